// server.go: a minimal MCP server speaking the Streamable HTTP transport over
// TLS (HTTP/2 negotiated by ALPN), written with the Go standard library only.
// It is a test peer for mcpspy: every JSON-RPC message it receives or sends is
// logged as one JSON line with the exact bytes, so a capture can be compared
// with what the server saw.
//
// Build: go build -o mcp-server server.go
// Run:   ./mcp-server -addr 127.0.0.1:8443 -cert server.pem -key server.key -log server.jsonl
package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
)

// rpc is a JSON-RPC 2.0 message of any kind (request, notification, response).
type rpc struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id,omitempty"`
	Method  string          `json:"method,omitempty"`
	Params  json.RawMessage `json:"params,omitempty"`
	Result  any             `json:"result,omitempty"`
	Error   *rpcError       `json:"error,omitempty"`
}

type rpcError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

type server struct {
	log      *msgLog
	sseMode  string // "auto" (big->SSE, rest JSON), "all", "none"
	bigSize  int
	mu       sync.Mutex
	sessions map[string]bool
}

var handshakeVersions = []string{"2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"}

func newSessionID() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// bigText returns exactly n bytes of deterministic, line-structured text.
func bigText(n int) string {
	var sb strings.Builder
	sb.Grow(n + 64)
	for i := 0; sb.Len() < n; i++ {
		fmt.Fprintf(&sb, "%08d abcdefghijklmnopqrstuvwxyz0123456789\n", i)
	}
	return sb.String()[:n]
}

func textResult(s string) map[string]any {
	return map[string]any{"content": []any{map[string]any{"type": "text", "text": s}}, "isError": false}
}

var tools = []any{
	map[string]any{"name": "echo", "description": "Returns its text argument.",
		"inputSchema": map[string]any{"type": "object", "required": []string{"text"},
			"properties": map[string]any{"text": map[string]any{"type": "string"}}}},
	map[string]any{"name": "big", "description": "Returns a large text result (default 1 MiB + 1 byte).",
		"inputSchema": map[string]any{"type": "object",
			"properties": map[string]any{"size": map[string]any{"type": "integer"}}}},
	map[string]any{"name": "slow", "description": "Answers after ten seconds, over SSE, unless cancelled first.",
		"inputSchema": map[string]any{"type": "object"}},
}

// slowWait is how long the slow tool takes; a cancelled call never answers.
const slowWait = 10 * time.Second

// handle computes the result (or error) of one request and whether to answer over SSE.
func (s *server) handle(m *rpc, session string) (result any, rerr *rpcError, sse bool, newSession string) {
	sse = s.sseMode == "all"
	switch m.Method {
	case "initialize":
		var p struct {
			ProtocolVersion string `json:"protocolVersion"`
		}
		_ = json.Unmarshal(m.Params, &p)
		version := handshakeVersions[len(handshakeVersions)-1]
		for _, v := range handshakeVersions {
			if v == p.ProtocolVersion {
				version = v
			}
		}
		newSession = newSessionID()
		s.mu.Lock()
		s.sessions[newSession] = true
		s.mu.Unlock()
		return map[string]any{
			"protocolVersion": version,
			"capabilities":    map[string]any{"tools": map[string]any{"listChanged": false}},
			"serverInfo":      map[string]any{"name": "mcpspy-go-test-server", "version": "0.1.0"},
		}, nil, sse, newSession
	case "ping":
		return map[string]any{}, nil, sse, ""
	case "tools/list":
		return map[string]any{"tools": tools}, nil, sse, ""
	case "tools/call":
		var p struct {
			Name      string `json:"name"`
			Arguments struct {
				Text string `json:"text"`
				Size int    `json:"size"`
			} `json:"arguments"`
		}
		if err := json.Unmarshal(m.Params, &p); err != nil {
			return nil, &rpcError{-32602, "invalid params: " + err.Error()}, sse, ""
		}
		switch p.Name {
		case "echo":
			return textResult(p.Arguments.Text), nil, sse, ""
		case "slow":
			return textResult("done"), nil, true, ""
		case "big":
			n := s.bigSize
			if p.Arguments.Size > 0 {
				n = p.Arguments.Size
			}
			return textResult(bigText(n)), nil, s.sseMode != "none", ""
		}
		return nil, &rpcError{-32602, "unknown tool: " + p.Name}, sse, ""
	}
	return nil, &rpcError{-32601, "method not found: " + m.Method}, sse, ""
}

func (s *server) known(session string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions[session]
}

// send marshals msg, logs the exact bytes and returns them.
func (s *server) send(r *http.Request, session string, msg any) []byte {
	b, err := json.Marshal(msg)
	if err != nil {
		panic(err)
	}
	s.log.log("send", r.Proto, session, b)
	return b
}

func (s *server) writeJSON(w http.ResponseWriter, r *http.Request, session string, status int, msg any) {
	b := s.send(r, session, msg)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(b)
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	session := r.Header.Get("Mcp-Session-Id")
	switch r.Method {
	case http.MethodDelete:
		s.mu.Lock()
		ok := s.sessions[session]
		delete(s.sessions, session)
		s.mu.Unlock()
		if !ok {
			http.Error(w, "unknown session", http.StatusNotFound)
			return
		}
		w.WriteHeader(http.StatusOK)
		return
	case http.MethodPost:
	default:
		w.Header().Set("Allow", "POST, DELETE")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<20))
	if err != nil {
		http.Error(w, "read error", http.StatusBadRequest)
		return
	}
	s.log.log("recv", r.Proto, session, body)
	var m rpc
	if err := json.Unmarshal(body, &m); err != nil || m.JSONRPC != "2.0" {
		s.writeJSON(w, r, session, http.StatusBadRequest,
			rpc{JSONRPC: "2.0", ID: json.RawMessage("null"), Error: &rpcError{-32700, "parse error"}})
		return
	}
	isRequest := m.Method != "" && len(m.ID) > 0
	// Everything but initialize (and unknown methods, answered -32601) needs a live session.
	needsSession := m.Method != "initialize" && m.Method != "server/discover"
	if needsSession && !s.known(session) {
		status := http.StatusNotFound
		if session == "" {
			status = http.StatusBadRequest
		}
		if !isRequest {
			http.Error(w, "missing or unknown Mcp-Session-Id", status)
			return
		}
		s.writeJSON(w, r, session, status,
			rpc{JSONRPC: "2.0", ID: m.ID, Error: &rpcError{-32600, "missing or unknown Mcp-Session-Id"}})
		return
	}
	if !isRequest { // notification or response from the client
		w.WriteHeader(http.StatusAccepted)
		return
	}
	result, rerr, sse, newSession := s.handle(&m, session)
	if newSession != "" {
		session = newSession
		w.Header().Set("Mcp-Session-Id", newSession)
	}
	resp := rpc{JSONRPC: "2.0", ID: m.ID, Result: result, Error: rerr}
	if !sse {
		s.writeJSON(w, r, session, http.StatusOK, resp)
		return
	}
	// SSE: one log notification related to the request, then the response; then close.
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	params, _ := json.Marshal(map[string]any{"level": "info", "logger": "mcpspy-go-test-server",
		"data": "handling " + m.Method})
	note := rpc{JSONRPC: "2.0", Method: "notifications/message", Params: params}
	slow := m.Method == "tools/call" && bytes.Contains(m.Params, []byte(`"name":"slow"`))
	for i, msg := range []any{note, resp} {
		if i == 1 && slow {
			// The client cancels by closing the stream (RST_STREAM over HTTP/2).
			select {
			case <-r.Context().Done():
				return
			case <-time.After(slowWait):
			}
		}
		fmt.Fprintf(w, "event: message\nid: %d\ndata: %s\n\n", i+1, s.send(r, session, msg))
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
	}
}

func main() {
	addr := flag.String("addr", "127.0.0.1:8443", "listen address")
	cert := flag.String("cert", "server.pem", "server certificate (PEM)")
	key := flag.String("key", "server.key", "server private key (PEM)")
	logPath := flag.String("log", "server.jsonl", "message log path ('-' = stdout)")
	sseMode := flag.String("sse", "auto", "SSE responses: auto (tool big only), all, none")
	bigSize := flag.Int("big-size", 1<<20+1, "default size in bytes of the big tool's text")
	plain := flag.Bool("plain", false, "serve plain HTTP/1.1, without TLS")
	flag.Parse()

	msgs, closeLog := openLog(*logPath, "server")
	defer closeLog()
	s := &server{log: msgs, sseMode: *sseMode, bigSize: *bigSize,
		sessions: map[string]bool{}}
	mux := http.NewServeMux()
	mux.Handle("/mcp", s)
	// net/http negotiates h2 via ALPN automatically when serving TLS.
	srv := &http.Server{Addr: *addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	if *plain {
		log.Printf("mcp test server listening on http://%s/mcp (pid %d)", *addr, os.Getpid())
		log.Fatal(srv.ListenAndServe())
	}
	log.Printf("mcp test server listening on https://%s/mcp (pid %d)", *addr, os.Getpid())
	log.Fatal(srv.ListenAndServeTLS(*cert, *key))
}
