"""The baseline for token_endpoint.py: a bare FastAPI POST endpoint."""

from fastapi import FastAPI, Request

app = FastAPI(telemetry={"tracing": False, "metrics": False, "logs": False})


@app.post("/bare")
async def bare(request: Request) -> dict[str, str]:
    await request.body()
    return {}
