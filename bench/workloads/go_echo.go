// An MCP-shaped JSON-RPC exchange over HTTPS between a Go client and a Go
// server in one process, both the standard library's: net/http speaks
// HTTP/2 over TLS, so the plaintext goes through crypto/tls, which mcpspy
// reads with uprobes on (*Conn).Write and (*Conn).Read. The client POSTs
// tools/call requests one after another; the server answers each with a
// JSON body. Prints messages per second (requests + responses), as
// http_echo.mjs does for Node; the start delay is not counted.
//
//	go build -o go_echo go_echo.go && ./go_echo [-messages N] [-start-delay 1s]
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"time"
)

type request struct {
	ID     int `json:"id"`
	Params struct {
		Arguments struct {
			Text string `json:"text"`
		} `json:"arguments"`
	} `json:"params"`
}

func echo(w http.ResponseWriter, r *http.Request) {
	var msg request
	if err := json.NewDecoder(r.Body).Decode(&msg); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	text, _ := json.Marshal(msg.Params.Arguments.Text)
	body := fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"result":{"content":[{"type":"text","text":%s}]}}`, msg.ID, text)
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, body)
}

func main() {
	messages := flag.Int("messages", 5000, "requests to send")
	delay := flag.Duration("start-delay", 0, "wait this long before the first connection (a recorder probes a Go program once it has started)")
	flag.Parse()
	time.Sleep(*delay)
	server := httptest.NewUnstartedServer(http.HandlerFunc(echo))
	server.EnableHTTP2 = true
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fail(err)
	}
	server.Listener = listener
	server.StartTLS()
	defer server.Close()
	client := server.Client()
	client.Transport.(*http.Transport).TLSClientConfig.NextProtos = []string{"h2"}
	text := strings.Repeat("x", 100)
	start := time.Now()
	for i := 0; i < *messages; i++ {
		body := fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"echo","arguments":{"text":"%s"}}}`, i, text)
		resp, err := client.Post(server.URL+"/mcp", "application/json", bytes.NewBufferString(body))
		if err != nil {
			fail(err)
		}
		if resp.ProtoMajor != 2 {
			fail(fmt.Errorf("HTTP/%d.%d, not HTTP/2", resp.ProtoMajor, resp.ProtoMinor))
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	seconds := time.Since(start).Seconds()
	out, _ := json.Marshal(map[string]float64{
		"messages":   float64(2 * *messages),
		"seconds":    seconds,
		"msgs_per_s": float64(2**messages) / seconds,
	})
	fmt.Println(string(out))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "go_echo:", err)
	os.Exit(1)
}
