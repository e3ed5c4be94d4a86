"""Model resolution: a litellm id becomes a ChatLiteLLM at first use; a chat model is used as is."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
from langchain_core.messages import HumanMessage

from langchain_escalate.models import ModelRef, model_name_of
from langchain_escalate.testing import ScriptedChatModel


def test_naming_a_litellm_model_imports_nothing() -> None:
    # A fresh interpreter: naming models (config load, graph build) must not
    # pay litellm's import or touch the network.
    env = {key: value for key, value in os.environ.items() if key != "LITELLM_LOCAL_MODEL_COST_MAP"}
    script = (
        "import sys\n"
        "from langchain_escalate.models import ModelRef\n"
        "ref = ModelRef('anthropic/claude-sonnet-4-6', temperature=0)\n"
        "imported = [name in sys.modules for name in ('litellm', 'langchain_litellm')]\n"
        "print(ref.name, ref.is_resolved, *imported)\n"
    )
    result = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["anthropic/claude-sonnet-4-6", "False", "False", "False"]


def test_first_use_builds_a_chat_litellm_offline_with_the_given_kwargs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("langchain_litellm")
    monkeypatch.delenv("LITELLM_LOCAL_MODEL_COST_MAP", raising=False)
    ref = ModelRef("openai/qwen2.5", api_base="http://127.0.0.1:9/v1", temperature=0)

    model = ref.get()

    from langchain_litellm import ChatLiteLLM  # noqa: PLC0415 - slow import, after the env check

    assert os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] == "True"
    assert isinstance(model, ChatLiteLLM)
    assert (model.model, model.api_base, model.temperature) == (
        "openai/qwen2.5",
        "http://127.0.0.1:9/v1",
        0,
    )
    assert ref.is_resolved
    assert ref.get() is model


def test_concurrent_first_use_builds_one_model() -> None:
    pytest.importorskip("langchain_litellm")
    ref = ModelRef("deepseek/deepseek-chat")
    with ThreadPoolExecutor(8) as executor:
        models = list(executor.map(lambda _: ref.get(), range(16)))
    assert all(model is models[0] for model in models)


def test_a_chat_model_is_used_as_is() -> None:
    scripted = ScriptedChatModel(script=["hello"], model_name="tiny-local")
    ref = ModelRef(scripted)

    assert ref.is_resolved
    assert ref.name == "tiny-local"
    assert ref.get() is scripted
    assert ref.get().invoke([HumanMessage("hi")]).content == "hello"
    assert scripted.calls[0][0].content == "hi"


def test_wrapping_a_ref_keeps_its_spec_and_shares_its_model() -> None:
    pytest.importorskip("langchain_litellm")
    inner = ModelRef("deepseek/deepseek-chat", temperature=0)
    outer = ModelRef(inner)
    assert outer.name == "deepseek/deepseek-chat"
    assert repr(outer) == "ModelRef('deepseek/deepseek-chat')"
    assert not outer.is_resolved

    built = inner.get()

    assert outer.is_resolved
    assert outer.get() is built


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((ScriptedChatModel(script=[]),), {"temperature": 0}, "apply only to a model id"),
        (("  ",), {}, "must not be empty"),
        ((42,), {}, "expected a litellm model id"),
        ((ModelRef("x/y"),), {"temperature": 0}, "takes no litellm kwargs"),
    ],
)
def test_bad_specs_are_type_errors(
    args: tuple[object, ...], kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(TypeError, match=message):
        ModelRef(*args, **kwargs)  # type: ignore[arg-type]


def test_model_name_of_falls_back_to_the_class_name() -> None:
    class Nameless(ScriptedChatModel):
        model_name: str = ""

    assert model_name_of(Nameless(script=[])) == "Nameless"
