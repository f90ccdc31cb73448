// A bare gRPC server in Go answering every call with one fixed message: the floor of a
// non-Python server on this machine, beside floor.py's bare grpcio one (bench/compare RESULTS,
// step 9). No protobuf code: the request is read as bytes and the answer is the serialized
// TokenValidateResponse given in hex (run.sh takes it from `floor.py answer-hex`, so both floors
// send the same bytes).
package main

import (
	"encoding/hex"
	"flag"
	"log"
	"net"

	"google.golang.org/grpc"
)

type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *(v.(*[]byte)), nil }
func (rawCodec) Unmarshal(data []byte, v any) error {
	*(v.(*[]byte)) = data
	return nil
}
func (rawCodec) Name() string { return "proto" }

func main() {
	bind := flag.String("bind", "127.0.0.1:50051", "host:port")
	answerHex := flag.String("answer", "", "the serialized answer, hex")
	flag.Parse()
	answer, err := hex.DecodeString(*answerHex)
	if err != nil {
		log.Fatalf("--answer: %v", err)
	}
	listener, err := net.Listen("tcp", *bind)
	if err != nil {
		log.Fatal(err)
	}
	server := grpc.NewServer(
		grpc.ForceServerCodec(rawCodec{}),
		grpc.UnknownServiceHandler(func(_ any, stream grpc.ServerStream) error {
			var request []byte
			if err := stream.RecvMsg(&request); err != nil {
				return err
			}
			return stream.SendMsg(&answer)
		}),
	)
	log.Printf("listening %s", listener.Addr())
	log.Fatal(server.Serve(listener))
}
