"""One bare Kafka hop as a process of its own: consume a topic in a group, produce each record on.

What a stage of the pipeline does with Kafka (one consume, one produce per message), through the same
client factory and broker profile, with no Junction code in between. Three of these in a chain are
the CPU floor the three stages cannot go below (bench/broker_floor.py).
"""
from __future__ import annotations

import argparse
import asyncio

from core.kafka import make_consumer, make_producer
from core.settings import load_settings
from junction.cli import use_uvloop


async def relay(source: str, target: str, group: str) -> None:
    settings = load_settings()
    consumer = make_consumer(settings, source, group=group)
    producer = make_producer(settings)
    await consumer.start()
    await producer.start()
    try:
        print("ready", flush=True)
        while True:
            batches = await consumer.getmany(timeout_ms=1000, max_records=500)
            acks = [await producer.send(target, value=r.value, key=r.key) for records in batches.values() for r in records]
            if acks:
                await asyncio.gather(*acks)  # acknowledged before the next fetch, as a stage does
    finally:
        await producer.stop()
        await consumer.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--source", required=True)
    parser.add_argument("--target", required=True)
    parser.add_argument("--group", required=True)
    args = parser.parse_args()
    use_uvloop()  # as `junction serve` runs the stages
    asyncio.run(relay(args.source, args.target, args.group))
