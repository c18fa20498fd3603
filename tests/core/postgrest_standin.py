"""A minimal stand-in for PostgREST, for tests only (PostgREST itself cannot run here).

What is real: the HTTP on 127.0.0.1 (uvicorn), supabase-py and httpx on the client side, and the
SQL functions, executed on the real embedded Postgres. What is a stand-in: this app replaces
PostgREST's request handling. It implements only ``POST /rest/v1/rpc/<function>`` the way PostgREST
does for our calls: checks the ``apikey``/``Authorization`` headers and ``Content-Profile: core``,
binds the JSON body's keys as named arguments cast to the function's declared parameter types, and
answers with a JSON array (set-returning functions) or a scalar, or PostgREST-shaped errors
(PGRST106 for an unexposed schema, PGRST202 for an unknown function, the SQLSTATE otherwise).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import uvicorn
from psycopg import sql
from psycopg.types.json import Jsonb
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

_STATUS = {"P0002": 400, "42501": 403, "42883": 404}


def make_app(dsn: str, key: str, exposed_schemas: tuple[str, ...] = ("public", "core")) -> Starlette:
    calls: list[dict[str, Any]] = []

    async def rpc(request: Request) -> Response:
        if request.headers.get("apikey") != key or request.headers.get("authorization") != f"Bearer {key}":
            return JSONResponse(
                {"code": "PGRST301", "message": "JWSError JWSInvalidSignature"}, status_code=401
            )
        schema = request.headers.get("content-profile", "public")
        if schema not in exposed_schemas:
            return JSONResponse(
                {
                    "code": "PGRST106",
                    "message": "Invalid schema: " + schema,
                    "hint": "Only the following schemas are exposed: public",
                },
                status_code=406,
            )
        name = request.path_params["function"]
        body = await request.json()
        calls.append({"function": name, "body": body})
        with psycopg.connect(dsn, autocommit=True) as conn:
            proc = conn.execute(
                "select p.proargnames, p.proargtypes::regtype[]::text[], p.proretset, t.typtype"
                " from pg_proc p join pg_type t on t.oid = p.prorettype"
                " where p.pronamespace = %s::regnamespace and p.proname = %s",
                (schema, name),
            ).fetchone()
            if proc is None:
                return JSONResponse(
                    {
                        "code": "PGRST202",
                        "message": f"Could not find the function {schema}.{name} in the schema cache",
                    },
                    status_code=404,
                )
            names, types, returns_set, ret_kind = proc
            arg_types = dict(zip(names or [], types, strict=False))
            args = []
            values = []
            for arg, value in body.items():
                if arg not in arg_types:
                    return JSONResponse(
                        {"code": "PGRST202", "message": f"no parameter {arg}"}, status_code=404
                    )
                args.append(
                    sql.SQL("{} => {}::{}").format(
                        sql.Identifier(arg), sql.Placeholder(), sql.SQL(arg_types[arg])
                    )
                )
                values.append(
                    Jsonb(value) if arg_types[arg] in ("jsonb", "json") and value is not None else value
                )
            call = sql.SQL("{}.{}({})").format(
                sql.Identifier(schema), sql.Identifier(name), sql.SQL(", ").join(args)
            )
            if returns_set or ret_kind == "c":
                query = sql.SQL("select coalesce(jsonb_agg(to_jsonb(r)), '[]') from {} r").format(call)
            else:
                query = sql.SQL("select to_jsonb({})").format(call)
            try:
                result = conn.execute(query, values).fetchone()[0]
            except psycopg.Error as exc:
                diag = exc.diag
                return JSONResponse(
                    {
                        "code": exc.sqlstate,
                        "message": diag.message_primary,
                        "details": diag.message_detail,
                        "hint": diag.message_hint,
                    },
                    status_code=_STATUS.get(exc.sqlstate or "", 400),
                )
        return JSONResponse(result)

    app = Starlette(routes=[Route("/rest/v1/rpc/{function}", rpc, methods=["POST"])])
    app.state.calls = calls
    return app


@contextmanager
def running_standin(dsn: str, key: str, **kw: Any) -> Iterator[tuple[str, Starlette]]:
    """Serve the stand-in on 127.0.0.1:<free port>; yields (base URL, app)."""
    app = make_app(dsn, key, **kw)
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:  # uvicorn flips this once the socket listens
        threading.Event().wait(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", app
    finally:
        server.should_exit = True
        thread.join(5)
