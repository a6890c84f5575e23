#!/usr/bin/env python3
"""Example backend service "orders" in Python with pika (Debian: python3-pika).

Same contract as orders-backend.js (README, "For backend developers"): consume what stomp-relay
publishes to the topic exchange ``stomp-relay.app`` for routing keys ``orders.#``, and answer the
sender on /user/queue/orders by publishing to the direct exchange ``stomp-relay.user`` with the
routing key stomp-relay put in the ``x-relay-user-key`` header.

    AMQP_URL=amqp://guest:guest@127.0.0.1:5672/%2F python3 docker/examples/orders_backend.py

The queue is auto-delete, so while no orders backend runs, stomp-relay's mandatory publish is
returned and the sender gets an ERROR instead of waiting forever.
"""
import json
import os
import signal
import sys
import uuid

import pika

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
QUEUE = os.environ.get("ORDERS_QUEUE", "orders-backend")
APP_EXCHANGE = "stomp-relay.app"
USER_EXCHANGE = "stomp-relay.user"


def main():
    params = pika.URLParameters(AMQP_URL)
    params.client_properties = {"connection_name": "orders-backend (python example)"}
    connection = pika.BlockingConnection(params)
    channel = connection.channel()
    channel.confirm_delivery()  # basic_publish raises if RabbitMQ does not take the reply
    channel.exchange_declare(APP_EXCHANGE, exchange_type="topic", durable=True)
    channel.queue_declare(QUEUE, durable=False, auto_delete=True)
    channel.queue_bind(QUEUE, APP_EXCHANGE, routing_key="orders.#")
    channel.basic_qos(prefetch_count=10)

    def on_request(ch, method, props, body):
        h = props.headers or {}
        try:
            request = json.loads(body)
        except ValueError:
            request = body.decode("utf-8", "replace")
        print(f"orders-backend: {h.get('x-relay-destination')} from {h.get('x-relay-user')}", flush=True)
        order_id = str(uuid.uuid4())
        reply = {
            "orderId": order_id,
            "status": "created",
            "action": h.get("x-relay-path"),
            "user": h.get("x-relay-user"),
            "request": request,
        }
        try:
            ch.basic_publish(
                exchange=USER_EXCHANGE,
                routing_key=h["x-relay-user-key"],
                body=json.dumps(reply).encode(),
                properties=pika.BasicProperties(
                    content_type="application/json",
                    message_id=order_id,
                    headers={
                        "x-relay-user-destination": "queue/orders",
                        "x-relay-message-id": order_id,
                        "in-reply-to": str(h.get("x-relay-message-id")),
                    },
                ),
                mandatory=True,
            )
        except pika.exceptions.UnroutableError:
            print(f"orders-backend: reply {order_id} not delivered: user offline", flush=True)
        ch.basic_ack(method.delivery_tag)

    channel.basic_consume(QUEUE, on_request)

    def stop(*_):
        channel.stop_consuming()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"orders-backend: ready, consuming {QUEUE} ({APP_EXCHANGE} orders.#)", flush=True)
    channel.start_consuming()
    connection.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
