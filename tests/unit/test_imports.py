"""The core imports only the standard library; the public API is exactly __all__."""

import ast
import pathlib

import jobq

CORE = pathlib.Path(jobq.__file__).parent / "core"
FORBIDDEN = (
    "grpc",
    "psycopg",
    "redis",
    "confluent_kafka",
    "aiosqlite",
    "google",
    "jobq.store",
    "jobq.server",
    "pydantic",
)


def test_core_imports_no_io_library() -> None:
    for path in CORE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert not name.startswith(FORBIDDEN), f"{path.name} imports {name}"


def test_public_names_are_exactly_all() -> None:
    # "@py_builtins" & co: pytest rewrites the asserts of every module of a distribution that
    # ships a pytest plugin (jobq.testing's), and leaves these names behind.
    public = {n for n in dir(jobq) if not n.startswith(("_", "@"))}
    modules = {
        "client",
        "core",
        "worker",
        "observability",
        "ids",
        "v1",
        "store",
        "config",
        "eventloop",
        "server",
        "examples",
        "ctl",
        "events",
        "wire",
        "auth",
        "coord",
        "testing",
    }
    assert public - modules == set(jobq.__all__)
