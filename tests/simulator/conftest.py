"""A simulator served by uvicorn in a thread of the test process, on a free loopback port, for
the official SDKs to talk to over real HTTP."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import anthropic
import httpx
import openai
import pytest
import uvicorn

from simulator import SimConfig, Simulator


class ThreadedSim:
    def __init__(self, config: SimConfig) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = Simulator(config)
        self.server = uvicorn.Server(
            uvicorn.Config(
                self.app,
                host="127.0.0.1",
                port=self.port,
                lifespan="off",
                access_log=False,
                log_level="warning",
            )
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the simulator did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    def openai(self, **kwargs) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key="sk-test", max_retries=0, **kwargs)

    def anthropic(self) -> anthropic.Anthropic:
        return anthropic.Anthropic(base_url=self.url, api_key="sk-ant-test", max_retries=0)

    def post(self, path: str, body: dict, headers: dict | None = None) -> httpx.Response:
        headers = {"authorization": "Bearer sk-test", **(headers or {})}
        return httpx.post(f"{self.url}{path}", json=body, headers=headers, timeout=30)


@contextmanager
def threaded_sim(config: SimConfig | None = None) -> Iterator[ThreadedSim]:
    server = ThreadedSim(config or SimConfig())
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def server():
    with threaded_sim() as sim:
        yield sim
