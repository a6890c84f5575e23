#!/usr/bin/env python3
"""A STOMP client that is not ours: stomp.py (Debian python3-stomp) over raw TCP.

Connects to HOST:PORT with the JWT as passcode (login is ignored by the service), subscribes to
DESTINATION, prints one line per frame of interest, and exits 0 after COUNT messages (2 on timeout,
1 when the server refuses it):

    STOMP_TOKEN=<jwt> /usr/bin/python3 stomp_py_client.py HOST PORT DESTINATION [COUNT]

With `--send` after COUNT it publishes instead: COUNT messages to DESTINATION (bodies "0", "1",
...) one after another without asking for receipts, as a bulk publisher does, then disconnects
asking for a receipt; it prints "SENT <count>" and exits 0 once that receipt came (1 on an ERROR,
2 when it did not come in time).

Lines: "CONNECTED user=<user-name> server=<server>", "SUBSCRIBED", "MESSAGE <destination> <body>",
"ERROR <message>", "SENT <count>". The token comes through the environment so that it is not on
a command line.
"""
import os
import sys
import threading

import stomp

TIMEOUT_S = 20


class Printer(stomp.ConnectionListener):
    def __init__(self, count):
        self.count = count
        self.received = 0
        self.done = threading.Event()
        self.failed = False
        self.said_bye = False

    def on_connected(self, frame):
        h = frame.headers
        print(f"CONNECTED user={h.get('user-name')} server={h.get('server')}", flush=True)

    def on_receipt(self, frame):
        if frame.headers.get("receipt-id") == "subscribed":
            print("SUBSCRIBED", flush=True)
        if frame.headers.get("receipt-id") == "bye":
            self.said_bye = True
            self.done.set()

    def on_message(self, frame):
        print(f"MESSAGE {frame.headers.get('destination')} {frame.body}", flush=True)
        self.received += 1
        if self.received >= self.count:
            self.done.set()

    def on_error(self, frame):
        print(f"ERROR {frame.headers.get('message')}", flush=True)
        self.failed = True
        self.done.set()

    def on_disconnected(self):
        self.done.set()


def publish(conn, printer, destination, count):
    """COUNT SENDs back to back (stomp.py writes each with a blocking sendall), then DISCONNECT."""
    for i in range(count):
        if printer.failed:
            return 1
        conn.send(destination, str(i))
    # stomp.py's disconnect(receipt=...) waits for the RECEIPT; the listener sees it too.
    conn.disconnect(receipt="bye")
    if not printer.done.wait(TIMEOUT_S):
        print(f"TIMEOUT after {TIMEOUT_S} s", flush=True)
        return 2
    if printer.failed:
        return 1
    if not printer.said_bye:
        print("CLOSED without the DISCONNECT receipt", flush=True)
        return 2
    print(f"SENT {count}", flush=True)
    return 0


def main():
    host, port, destination = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    count = int(sys.argv[4]) if len(sys.argv) > 4 else 1
    conn = stomp.Connection12([(host, port)], heartbeats=(0, 0), reconnect_attempts_max=1)
    printer = Printer(count)
    conn.set_listener("printer", printer)
    try:
        conn.connect(login="any", passcode=os.environ["STOMP_TOKEN"], wait=True)
    except stomp.exception.ConnectFailedException:
        printer.done.wait(2)
        return 1
    if printer.failed:
        return 1
    if "--send" in sys.argv[5:]:
        return publish(conn, printer, destination, count)
    conn.subscribe(destination, id="1", ack="auto", headers={"receipt": "subscribed"})
    if not printer.done.wait(TIMEOUT_S):
        print(f"TIMEOUT after {TIMEOUT_S} s", flush=True)
        conn.disconnect()
        return 2
    if printer.failed:
        return 1
    conn.disconnect(receipt="bye")
    return 0


if __name__ == "__main__":
    sys.exit(main())
