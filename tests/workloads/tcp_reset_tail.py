"""An HTTP exchange on loopback whose server writes once more after the client
has gone: the write succeeds, and the client's reset, handled inside that same
call, closes the server's socket and releases its port before the call
returns. That is how a Streamable HTTP server ends an SSE response after the
client left (the last chunk, "0\\r\\n\\r\\n").

Prints JSON: the server's pid, its port, every byte it wrote, and the TCP state
of its socket right after the last write (7 = TCP_CLOSE: the reset was handled).
"""
import json, os, socket, time

TCP_CLOSE = 7
TAIL = b"0\r\n\r\n"

srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(1)
port = srv.getsockname()[1]

client = socket.create_connection(("127.0.0.1", port))
conn, _ = srv.accept()
client.sendall(b"GET /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n")
conn.recv(65536)
head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
conn.sendall(head)
client.recv(65536)
client.close()
time.sleep(0.2)  # the client's FIN arrives; the server's socket is in CLOSE_WAIT
sent = conn.send(TAIL)
state = conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0]
print(json.dumps({"pid": os.getpid(), "port": port, "written": (head + TAIL[:sent]).decode(),
                  "state_after_tail": state}))
