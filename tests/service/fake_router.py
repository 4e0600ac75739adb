"""A stand-in for `repspace.service.collections`: an APIRouter that create_app mounts when listed."""

from fastapi import APIRouter, Depends

from repspace.errors import InvalidInputError, UnknownNameError
from repspace.service.deps import ServiceState, get_state
from repspace.service.routes import check_text_limits, embed_texts

router = APIRouter(prefix="/v1/things", tags=["things"])


@router.get("/{name}")
def info(name: str, state: ServiceState = Depends(get_state)) -> dict:
    if name == "missing":
        raise UnknownNameError(f"no collection {name!r}")
    return {"name": name, "root": state.config.collections}


@router.post("/{name}/backfill")
def backfill(name: str, body: dict) -> dict:
    """A library error naming a request field (batch_size), or an argument of the server's own (device)."""
    if body.get("batch_size", 1) < 1:
        raise InvalidInputError(f"batch_size must be positive, got {body['batch_size']}", param="batch_size")
    raise InvalidInputError("device 'cuda' requested but CUDA is not available here", param="device")


@router.post("/{name}/search")
async def search(name: str, body: dict, state: ServiceState = Depends(get_state)) -> dict:
    texts = [body["text"]]
    check_text_limits(state.config.limits, texts, "text", single=True)
    X, _, method = await embed_texts(state, body["model"], texts, body.get("dimensions"))
    return {"dim": int(X.shape[1]), "method": method}
