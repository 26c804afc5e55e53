"""FastAPI dependencies: the run store, the launcher, and the bearer-token check."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from services.control.launcher import Launcher
from services.control.runs_store import RunsStore
from services.control.settings import ControlSettings

_bearer = HTTPBearer(auto_error=False, description="DASHRL_API_TOKEN")


def get_settings(request: Request) -> ControlSettings:
    return request.app.state.settings


def get_store(request: Request) -> RunsStore:
    return request.app.state.store


def get_launcher(request: Request) -> Launcher:
    return request.app.state.launcher


def require_token(
    settings: Annotated[ControlSettings, Depends(get_settings)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Mutating routes need `Authorization: Bearer <DASHRL_API_TOKEN>` (compared in constant
    time). A server without a token is bound to loopback (see settings.bind_error)."""
    if settings.api_token is None:
        return
    given = credentials.credentials.encode() if credentials is not None else b""
    if not hmac.compare_digest(given, settings.api_token.encode()):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing or wrong bearer token",
                            headers={"WWW-Authenticate": "Bearer"})


Store = Annotated[RunsStore, Depends(get_store)]
CurrentLauncher = Annotated[Launcher, Depends(get_launcher)]
Authorized = Depends(require_token)
