// stack_writer.go: (*tls.Conn).Write called on fresh goroutines at every
// call depth from 0 to -depths, so that for some of them Write's own stack
// check finds the stack too small: the call grows the stack and starts
// over from its entry. A test peer for mcpspy, whose entry probe sits on
// that check and must take each such call once. Each write is one HTTP/1.1
// request carrying a JSON-RPC request whose id is the depth; the server in
// the same process reads them all and says how many bytes it got.
//
// Build: go build -o stack-writer stack_writer.go
// Run:   ./stack-writer -cert cert.pem -key key.pem -depths 400 -start-delay 1s
package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"log"
	"time"
)

// deep recurses d times with a small frame each, then writes.
//
//go:noinline
func deep(d int, c *tls.Conn, msg []byte) {
	var pad [16]byte
	if d > 0 {
		deep(d-1, c, msg)
		pad[d%16] = 1
		return
	}
	if _, err := c.Write(msg); err != nil {
		log.Fatal(err)
	}
}

func main() {
	cert := flag.String("cert", "cert.pem", "server certificate (PEM)")
	key := flag.String("key", "key.pem", "server private key (PEM)")
	depths := flag.Int("depths", 400, "write from call depths 0 .. depths-1")
	startDelay := flag.Duration("start-delay", 0, "wait this long first (lets a recorder that probes new programs attach)")
	flag.Parse()
	time.Sleep(*startDelay)
	pair, err := tls.LoadX509KeyPair(*cert, *key)
	if err != nil {
		log.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pair}})
	if err != nil {
		log.Fatal(err)
	}
	got := make(chan int64)
	go func() {
		s, err := ln.Accept()
		if err != nil {
			log.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, s)
		got <- n
	}()
	c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		log.Fatal(err)
	}
	var sent int64
	for d := 0; d < *depths; d++ {
		body := fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/list"}`, d)
		msg := []byte(fmt.Sprintf("POST /mcp HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body))
		done := make(chan struct{})
		go func() { deep(d, c, msg); close(done) }()
		<-done
		sent += int64(len(msg))
	}
	c.Close()
	if n := <-got; n != sent {
		log.Fatalf("the server read %d bytes, %d were sent", n, sent)
	}
	fmt.Printf("{\"requests\":%d,\"bytes\":%d}\n", *depths, sent)
}
