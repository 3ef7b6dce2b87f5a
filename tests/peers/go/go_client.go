// client.go: a minimal MCP client for the Streamable HTTP transport over TLS
// with HTTP/2, written with the Go standard library only. It is a test peer
// for mcpspy: it runs initialize, notifications/initialized, tools/list,
// tools/call echo, tools/call big (and with -cancel-slow, a tools/call slow
// that it cancels by closing its stream) and DELETE, and logs every JSON-RPC
// message it sends or receives as one JSON line with the exact bytes.
//
// Build: go build -o mcp-client client.go
// Run:   ./mcp-client -url https://127.0.0.1:8443/mcp -ca ca.pem -log client.jsonl
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"strings"
	"time"
)

type client struct {
	http      *http.Client
	url       string
	log       *msgLog
	session   string
	version   string
	requireH2 bool
	nextID    int
	// cancelSlow: also call the slow tool and cancel it once its stream begins.
	cancelSlow bool
}

// response is the subset of a JSON-RPC response the client inspects.
type response struct {
	ID     json.RawMessage `json:"id"`
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// post sends one JSON-RPC message. For a request (method with id) it returns
// the matching response, read from either an application/json body or an SSE stream.
func (c *client) post(method string, params any, isRequest bool) (*response, error) {
	msg := map[string]any{"jsonrpc": "2.0", "method": method}
	if params != nil {
		msg["params"] = params
	}
	var id string
	if isRequest {
		c.nextID++
		msg["id"] = c.nextID
		id = fmt.Sprint(c.nextID)
	}
	body, err := json.Marshal(msg)
	if err != nil {
		return nil, err
	}
	resp, err := c.send(context.Background(), body)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if c.requireH2 && resp.ProtoMajor != 2 {
		return nil, fmt.Errorf("%s: got %s, want HTTP/2", method, resp.Proto)
	}
	if sid := resp.Header.Get("Mcp-Session-Id"); sid != "" {
		c.session = sid
	}
	if !isRequest {
		if resp.StatusCode != http.StatusAccepted {
			return nil, fmt.Errorf("%s: status %s, want 202", method, resp.Status)
		}
		return nil, nil
	}
	var msgs [][]byte
	switch ct := resp.Header.Get("Content-Type"); {
	case strings.HasPrefix(ct, "application/json"):
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return nil, err
		}
		msgs = [][]byte{b}
	case strings.HasPrefix(ct, "text/event-stream"):
		if msgs, err = readSSE(resp.Body); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("%s: status %s, content-type %q", method, resp.Status, ct)
	}
	var out *response
	for _, b := range msgs {
		c.log.log("recv", resp.Proto, c.session, b)
		var r response
		if err := json.Unmarshal(b, &r); err != nil {
			return nil, fmt.Errorf("%s: bad JSON from server: %v", method, err)
		}
		if string(r.ID) == id {
			out = &r
		}
	}
	if out == nil {
		return nil, fmt.Errorf("%s: no response with id %s (status %s)", method, id, resp.Status)
	}
	if out.Error != nil {
		return out, fmt.Errorf("%s: JSON-RPC error %d: %s", method, out.Error.Code, out.Error.Message)
	}
	return out, nil
}

// send POSTs one logged message and returns the response, whose body is the caller's to close.
func (c *client) send(ctx context.Context, body []byte) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	c.setSessionHeaders(req)
	c.log.log("send", "", c.session, body)
	return c.http.Do(req)
}

func (c *client) setSessionHeaders(req *http.Request) {
	if c.session != "" {
		req.Header.Set("Mcp-Session-Id", c.session)
	}
	if c.version != "" {
		req.Header.Set("Mcp-Protocol-Version", c.version)
	}
}

// readSSE returns the data payload of every event in an SSE stream until EOF.
// Multiple data: lines of one event are joined with "\n" (per the SSE spec).
func readSSE(r io.Reader) ([][]byte, error) {
	br := bufio.NewReader(r)
	var out [][]byte
	var data []byte
	inData := false
	for {
		line, err := br.ReadBytes('\n')
		if err != nil && err != io.EOF {
			return nil, err
		}
		line = bytes.TrimRight(line, "\r\n")
		switch {
		case len(line) == 0: // end of event
			if inData {
				out = append(out, data)
			}
			data, inData = nil, false
		case bytes.HasPrefix(line, []byte("data:")):
			v := bytes.TrimPrefix(bytes.TrimPrefix(line, []byte("data:")), []byte(" "))
			if inData {
				data = append(data, '\n')
			}
			data, inData = append(data, v...), true
		}
		if err == io.EOF {
			if inData {
				out = append(out, data)
			}
			return out, nil
		}
	}
}

func (c *client) deleteSession() error {
	req, err := http.NewRequest(http.MethodDelete, c.url, nil)
	if err != nil {
		return err
	}
	c.setSessionHeaders(req)
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("DELETE: status %s", resp.Status)
	}
	return nil
}

func (c *client) run(echoText string, bigSize int) error {
	r, err := c.post("initialize", map[string]any{
		"protocolVersion": "2025-11-25",
		"capabilities":    map[string]any{},
		"clientInfo":      map[string]any{"name": "mcpspy-go-test-client", "version": "0.1.0"},
	}, true)
	if err != nil {
		return err
	}
	var init struct {
		ProtocolVersion string `json:"protocolVersion"`
	}
	if err := json.Unmarshal(r.Result, &init); err != nil {
		return err
	}
	c.version = init.ProtocolVersion
	if c.session == "" {
		return errors.New("initialize: no Mcp-Session-Id")
	}
	if _, err := c.post("notifications/initialized", nil, false); err != nil {
		return err
	}
	if _, err := c.post("tools/list", map[string]any{}, true); err != nil {
		return err
	}
	var tr struct {
		Content []struct {
			Text string `json:"text"`
		} `json:"content"`
	}
	r, err = c.post("tools/call", map[string]any{"name": "echo", "arguments": map[string]any{"text": echoText}}, true)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(r.Result, &tr); err != nil || len(tr.Content) != 1 || tr.Content[0].Text != echoText {
		return fmt.Errorf("echo: unexpected result %s", r.Result)
	}
	args := map[string]any{}
	if bigSize > 0 {
		args["size"] = bigSize
	}
	r, err = c.post("tools/call", map[string]any{"name": "big", "arguments": args}, true)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(r.Result, &tr); err != nil || len(tr.Content) != 1 {
		return fmt.Errorf("big: unexpected result (%d bytes)", len(r.Result))
	}
	log.Printf("big: %d bytes of text in a %d-byte result", len(tr.Content[0].Text), len(r.Result))
	if c.cancelSlow {
		if err := c.callAndCancel(); err != nil {
			return err
		}
	}
	return c.deleteSession()
}

// callAndCancel calls the slow tool and, once the server's first event has
// come, cancels the call: the HTTP/2 transport resets the stream
// (RST_STREAM, CANCEL), and the HTTP/1.1 transport closes the connection,
// which is how MCP 2026-07-28 cancels a request over HTTP.
func (c *client) callAndCancel() error {
	c.nextID++
	body, err := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": c.nextID, "method": "tools/call",
		"params": map[string]any{"name": "slow", "arguments": map[string]any{}}})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	resp, err := c.send(ctx, body)
	if err != nil {
		return err
	}
	br := bufio.NewReader(resp.Body)
	for {
		line, err := br.ReadBytes('\n')
		if err != nil {
			return fmt.Errorf("slow: the stream ended before its first event: %v", err)
		}
		if line = bytes.TrimRight(line, "\r\n"); bytes.HasPrefix(line, []byte("data: ")) {
			c.log.log("recv", resp.Proto, c.session, bytes.TrimPrefix(line, []byte("data: ")))
			break
		}
	}
	cancel()
	resp.Body.Close()
	log.Printf("slow: cancelled after its first event")
	return nil
}

func main() {
	url := flag.String("url", "https://127.0.0.1:8443/mcp", "MCP endpoint")
	caPath := flag.String("ca", "ca.pem", "CA certificate (PEM) that signed the server certificate")
	logPath := flag.String("log", "client.jsonl", "message log path ('-' = stdout)")
	echoText := flag.String("echo", "hello from the go client", "text for the echo tool")
	bigSize := flag.Int("big-size", 0, "size argument for the big tool (0 = server default)")
	requireH2 := flag.Bool("require-h2", true, "fail unless every response is HTTP/2")
	cancelSlow := flag.Bool("cancel-slow", false, "also call the slow tool and cancel it once its stream begins")
	startDelay := flag.Duration("start-delay", 0, "wait this long before the first request (lets a recorder that probes new programs attach)")
	http1 := flag.Bool("http1", false, "speak HTTP/1.1 over TLS (no h2)")
	flag.Parse()
	time.Sleep(*startDelay)

	pem, err := os.ReadFile(*caPath)
	if err != nil {
		log.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		log.Fatalf("no certificate in %s", *caPath)
	}
	msgs, closeLog := openLog(*logPath, "client")
	defer closeLog()
	// A custom TLSClientConfig disables h2 unless ForceAttemptHTTP2 is set.
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, ForceAttemptHTTP2: !*http1}
	c := &client{http: &http.Client{Transport: tr, Timeout: 60 * time.Second}, url: *url,
		log: msgs, requireH2: *requireH2, cancelSlow: *cancelSlow}
	if err := c.run(*echoText, *bigSize); err != nil {
		log.Fatal(err)
	}
	log.Printf("ok: session %s, protocol %s", c.session, c.version)
}
