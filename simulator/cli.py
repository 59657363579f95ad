"""Running a simulator: the command-line flags (shared by ``python -m simulator`` and
``manage.py simulate_upstream``), the ``SimConfig`` they make, and serving it under uvicorn."""

from __future__ import annotations

import argparse

from simulator.app import Simulator
from simulator.billing import load_prices
from simulator.config import SimConfig


def add_arguments(parser) -> None:
    """The command-line flags, shared by ``manage.py simulate_upstream`` and ``-m``."""
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay before answering")
    parser.add_argument(
        "--chunk-delay-ms", type=float, default=0.0, help="delay between stream content chunks"
    )
    parser.add_argument("--chunks", type=int, default=20, help="content chunks per stream")
    parser.add_argument(
        "--batch-delay",
        type=float,
        default=0.5,
        metavar="SECONDS",
        help="how long a batch (OpenAI's Batch API, Anthropic's Message Batches) takes from "
        "creation to its end (default 0.5; per batch: the x-sim-batch-delay-ms header)",
    )
    _add_fault_arguments(parser)
    parser.add_argument(
        "--reply",
        default=None,
        metavar="TEXT",
        help="the text of every non-streaming chat answer (usage is counted as usual)",
    )
    parser.add_argument("--log-level", default="warning")


def _add_fault_arguments(parser) -> None:
    parser.add_argument(
        "--fail-rate", type=float, default=0.0, help="probability of a simulated 500"
    )
    parser.add_argument(
        "--status", type=int, default=None, help="answer every request with this error status"
    )
    parser.add_argument(
        "--api-key", default=None, help="accept only this key (default: any non-empty key)"
    )
    parser.add_argument(
        "--seed", type=int, default=None, help="seed for --fail-rate and the other rates"
    )
    parser.add_argument(
        "--reset-rate",
        type=float,
        default=0.0,
        help="probability of dropping the connection without an answer",
    )
    parser.add_argument(
        "--malformed-rate",
        type=float,
        default=0.0,
        help="probability of a 200 whose body is not valid JSON (non-streaming answers)",
    )
    parser.add_argument(
        "--cut-stream-after",
        type=int,
        default=None,
        metavar="N",
        help="drop every stream's connection after N content chunks",
    )
    parser.add_argument(
        "--retry-after",
        type=float,
        default=1.0,
        metavar="S",
        help="the Retry-After (seconds) sent with 429 answers (default 1)",
    )
    _billing_arguments(parser)


def _billing_arguments(parser) -> None:
    parser.add_argument(
        "--bill-max",
        action="store_true",
        help="bill each chat request the most it allows: every one of its n choices as long as "
        "its max tokens, images by OpenAI's tile rule at their largest",
    )
    parser.add_argument(
        "--completion-tokens",
        type=int,
        default=None,
        metavar="N",
        help="report N completion tokens on every chat answer, whatever the request allowed "
        "(a misbehaving upstream)",
    )
    parser.add_argument(
        "--admin-key",
        default=None,
        metavar="KEY",
        help="accept only this key on the organisation usage and cost reports "
        "(/v1/organization/..., /v1/organizations/...; default: any non-empty key)",
    )
    parser.add_argument(
        "--prices",
        default=None,
        metavar="PATH",
        help='the cost reports\' price table, a JSON file {"model": {"input": "2.50", '
        '"cached_input": "1.25", "cache_write": "3.75", "output": "10.00"}} in USD per '
        "million tokens; it replaces the built-in table of public list prices",
    )


def config_from_options(options: dict) -> SimConfig:
    return SimConfig(
        latency_ms=options["latency_ms"],
        chunk_delay_ms=options["chunk_delay_ms"],
        chunks=options["chunks"],
        fail_rate=options["fail_rate"],
        status=options["status"],
        api_key=options["api_key"],
        seed=options["seed"],
        reset_rate=options.get("reset_rate", 0.0),
        malformed_rate=options.get("malformed_rate", 0.0),
        cut_stream_after=options.get("cut_stream_after"),
        retry_after=options.get("retry_after", 1.0),
        reply=options.get("reply"),
        bill_max=options.get("bill_max", False),
        completion_tokens=options.get("completion_tokens"),
        admin_key=options.get("admin_key"),
        prices=load_prices(options["prices"]) if options.get("prices") else None,
        batch_delay=options.get("batch_delay", 0.5),
    )


def serve(config: SimConfig, *, host: str, port: int, log_level: str = "warning") -> None:
    """Run under uvicorn: uvloop, httptools, no access log (it is the benchmarks' baseline)."""
    import uvicorn

    uvicorn.run(
        Simulator(config),
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        lifespan="off",
        access_log=False,
        log_level=log_level,
        server_header=False,
        date_header=False,
    )


def main(argv: list[str] | None = None, *, description: str | None = None) -> None:
    """``python -m simulator``: parse the flags, print the URL, serve until interrupted.
    ``description`` is the ``--help`` text (``__main__`` passes the package's docstring)."""
    parser = argparse.ArgumentParser(prog="python -m simulator", description=description)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        config = config_from_options(vars(args))
    except ValueError as exc:
        parser.error(str(exc))
    print(f"upstream simulator on http://{args.host}:{args.port}/v1", flush=True)
    serve(config, host=args.host, port=args.port, log_level=args.log_level)
