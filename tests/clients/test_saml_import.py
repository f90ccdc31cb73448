"""pysaml2 is loaded only where SAML is used: not by the worker, beat, the consumer or the gRPC
server, each of which imports clients.saml through clients.services and the admin."""

from __future__ import annotations

from tests.idp.test_configuration import manage


def test_a_process_that_serves_no_saml_page_does_not_load_pysaml2(tmp_path):
    code = (
        "import sys; from idp.celery import app; from idp.api import grpc_server; "
        "from clients import saml, services; print('saml2' in sys.modules)"
    )
    result = manage("shell", "-c", code, env={"IDP_DATA_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "False"
