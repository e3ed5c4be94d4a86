"""Model resolution: ``provider:model`` through init_chat_model, a litellm id through
ChatLiteLLM, both at first use; a chat model is used as is."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
from langchain_core.messages import HumanMessage

from langchain_escalate.cost import PriceBook
from langchain_escalate.models import (
    LANGCHAIN_PROVIDERS,
    ModelRef,
    model_name_of,
    price_name,
)
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
        ((ScriptedChatModel(script=[]),), {"temperature": 0}, "apply only to a model string"),
        (("  ",), {}, "must not be empty"),
        ((42,), {}, "expected a model string"),
        ((ModelRef("x/y"),), {"temperature": 0}, "takes no model kwargs"),
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


# -- provider:model through LangChain's init_chat_model -----------------------


def test_naming_a_langchain_model_imports_no_provider_package() -> None:
    env = {key: value for key, value in os.environ.items() if key != "LITELLM_LOCAL_MODEL_COST_MAP"}
    script = (
        "import sys\n"
        "from langchain_escalate.models import ModelRef\n"
        "ref = ModelRef('anthropic:claude-sonnet-4-6', temperature=0)\n"
        "loaded = [m in sys.modules for m in ('langchain_anthropic', 'litellm')]\n"
        "print(ref.name, ref.kind, ref.is_resolved, *loaded)\n"
    )
    result = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == [
        "anthropic/claude-sonnet-4-6",
        "langchain",
        "False",
        "False",
        "False",
    ]


def test_provider_colon_model_is_built_by_init_chat_model_at_first_use(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # langchain-litellm is installed, so its init_chat_model provider builds for real.
    pytest.importorskip("langchain_litellm")
    from langchain import chat_models  # noqa: PLC0415

    received: list[tuple[str, dict[str, object]]] = []
    real_init = chat_models.init_chat_model

    def spy(model: str, **kwargs: object) -> object:
        received.append((model, kwargs))
        return real_init(model, **kwargs)

    monkeypatch.setattr(chat_models, "init_chat_model", spy)
    ref = ModelRef("litellm:deepseek/deepseek-chat", temperature=0)
    assert received == []  # nothing built by naming it

    model = ref.get()

    from langchain_litellm import ChatLiteLLM  # noqa: PLC0415

    assert received == [("litellm:deepseek/deepseek-chat", {"temperature": 0})]
    assert isinstance(model, ChatLiteLLM)
    assert (model.model, model.temperature) == ("deepseek/deepseek-chat", 0)
    assert ref.get() is model
    assert ref.name == "deepseek/deepseek-chat"


def test_a_missing_provider_package_is_named_in_the_error() -> None:
    if importlib.util.find_spec("langchain_anthropic") is not None:
        from langchain_anthropic import ChatAnthropic  # noqa: PLC0415

        assert isinstance(ModelRef("anthropic:claude-sonnet-4-6").get(), ChatAnthropic)
        return
    ref = ModelRef("anthropic:claude-sonnet-4-6")

    with pytest.raises(ImportError, match=r"pip install langchain-anthropic") as raised:
        ref.get()

    assert "anthropic:claude-sonnet-4-6" in str(raised.value)
    assert "'anthropic/claude-sonnet-4-6'" in str(raised.value)  # the way out with litellm
    assert raised.value.name == "langchain-anthropic"
    assert not ref.is_resolved


@pytest.mark.parametrize(
    ("spec", "kind", "name"),
    [
        ("anthropic:claude-sonnet-4-6", "langchain", "anthropic/claude-sonnet-4-6"),
        ("anthropic/claude-sonnet-4-6", "litellm", "anthropic/claude-sonnet-4-6"),
        ("openai:gpt-4o-mini", "langchain", "openai/gpt-4o-mini"),
        ("google_genai:gemini-2.5-flash", "langchain", "gemini/gemini-2.5-flash"),
        ("mistralai:mistral-large-latest", "langchain", "mistral/mistral-large-latest"),
        ("litellm:deepseek/deepseek-chat", "langchain", "deepseek/deepseek-chat"),
        # A colon after a slash, or after a name LangChain does not know: litellm's.
        ("ollama/llama3:8b", "litellm", "ollama/llama3:8b"),
        ("ft:gpt-4o-mini:acme::x1", "litellm", "ft:gpt-4o-mini:acme::x1"),
        ("bedrock/anthropic.claude-3-sonnet-20240229-v1:0", "litellm", None),
        ("deepseek-chat", "litellm", "deepseek-chat"),
    ],
)
def test_model_strings_are_classified_and_named_for_pricing(
    spec: str, kind: str, name: str | None
) -> None:
    ref = ModelRef(spec)
    assert ref.kind == kind
    assert ref.name == (name or spec)
    assert ref.spec == spec
    assert repr(ref) == f"ModelRef({spec!r})"


@pytest.mark.parametrize(
    ("langchain_id", "litellm_id"),
    [
        ("anthropic:claude-sonnet-4-6", "anthropic/claude-sonnet-4-6"),
        ("openai:gpt-4o-mini", "openai/gpt-4o-mini"),
        ("deepseek:deepseek-chat", "deepseek/deepseek-chat"),
        ("google_genai:gemini-2.5-flash", "gemini/gemini-2.5-flash"),
    ],
)
def test_both_spellings_of_a_model_cost_the_same(langchain_id: str, litellm_id: str) -> None:
    prices = PriceBook()
    by_langchain = prices.cost_usd(ModelRef(langchain_id).name, 12_345, 678)
    by_litellm = prices.cost_usd(ModelRef(litellm_id).name, 12_345, 678)
    assert by_litellm is not None
    assert by_litellm > 0
    assert by_langchain == by_litellm


def test_the_provider_list_matches_init_chat_model() -> None:
    # models.py keeps its own copy so that naming a model imports nothing;
    # this catches a LangChain release that adds or drops a provider.
    from langchain.chat_models import base  # noqa: PLC0415

    assert set(base._BUILTIN_PROVIDERS) == set(LANGCHAIN_PROVIDERS)


def test_every_langchain_provider_has_a_litellm_provider() -> None:
    from langchain_escalate.cost import ensure_offline_price_map  # noqa: PLC0415

    ensure_offline_price_map()
    import litellm  # noqa: PLC0415 - seconds to import

    known = {getattr(p, "value", p) for p in litellm.provider_list}
    # langsmith and upstage have no litellm provider: their ids stay unpriced
    # unless prices are configured.
    unmapped = {
        provider
        for provider in LANGCHAIN_PROVIDERS - {"litellm", "langsmith", "upstage"}
        if price_name(f"{provider}:m").split("/")[0] not in known
    }
    assert unmapped == set()
