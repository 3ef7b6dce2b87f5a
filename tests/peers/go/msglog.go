package main

// Shared by go_client.go and go_server.go: each is built with this file.

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log"
	"os"
	"sync"
	"time"
)

// msgLog writes one JSON object per line: {"ts","peer","dir","proto","session","len","sha256","msg"}.
// "msg" is the exact JSON-RPC message bytes as a string.
type msgLog struct {
	mu   sync.Mutex
	w    io.Writer
	peer string
}

func (l *msgLog) log(dir, proto, session string, raw []byte) {
	sum := sha256.Sum256(raw)
	rec := map[string]any{
		"ts": time.Now().UTC().Format(time.RFC3339Nano), "peer": l.peer, "dir": dir,
		"proto": proto, "session": session, "len": len(raw),
		"sha256": hex.EncodeToString(sum[:]), "msg": string(raw),
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	enc := json.NewEncoder(l.w)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(rec); err != nil {
		log.Printf("log write: %v", err)
	}
}

// openLog opens the message log at path ("-": standard output) for peer,
// appending; the function it returns closes the file.
func openLog(path, peer string) (*msgLog, func()) {
	if path == "-" {
		return &msgLog{w: os.Stdout, peer: peer}, func() {}
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		log.Fatal(err)
	}
	return &msgLog{w: f, peer: peer}, func() { f.Close() }
}
