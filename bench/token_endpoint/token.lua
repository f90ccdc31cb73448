-- wrk script: POST /o/token/ grant_type=client_credentials with HTTP Basic client auth.
-- BENCH_BASIC is "base64(client_id:client_secret)", set by run.sh.
wrk.method = "POST"
wrk.body = "grant_type=client_credentials"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic " .. os.getenv("BENCH_BASIC")
