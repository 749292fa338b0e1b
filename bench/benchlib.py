"""What bench/forward.py and bench/replay.py share: a pika connection to the benchmark's
broker whose channel comes back after the broker closes it (a passive declare of a missing
queue closes it with 404)."""

import pika
import pika.exceptions


class Connection:
    def __init__(self, url, heartbeat=None):
        """heartbeat 0 turns heartbeats off: for a control connection that may sit idle (no
        pika call to service it) for longer than the broker's heartbeat timeout."""
        self.url = url
        self.params = pika.URLParameters(url)
        if heartbeat is not None:
            self.params.heartbeat = heartbeat
        self.conn = pika.BlockingConnection(self.params)
        self.ch = self.conn.channel()

    def channel(self):
        if not self.conn.is_open:
            self.conn = pika.BlockingConnection(self.params)
            self.ch = self.conn.channel()
        if not self.ch.is_open:
            self.ch = self.conn.channel()
        return self.ch

    def count(self, queue):
        """Messages ready in queue, 0 when it does not exist (yet)."""
        try:
            return self.channel().queue_declare(queue, passive=True).method.message_count
        except pika.exceptions.ChannelClosedByBroker as e:
            if e.reply_code == 404:
                return 0
            raise

    def delete(self, queues, exchanges):
        """Deletes the named queues and exchanges (absent ones are fine). RabbitMQ 3.10 now and
        then closes the connection with 541 INTERNAL_ERROR while it deletes a quorum queue whose
        segment files it is still writing (seen once in a 5-round run): the delete is tried
        again on a new connection, up to three times."""
        for attempt in range(3):
            try:
                ch = self.channel()
                for q in queues:
                    ch.queue_delete(q)
                for x in exchanges:
                    ch.exchange_delete(x)
                return
            except pika.exceptions.ConnectionClosedByBroker as e:
                if e.reply_code != 541 or attempt == 2:
                    raise
