"""``EscalateConfig``: a validated ``escalate.yaml`` that builds nodes, tools and middleware."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import PrivateAttr

from langchain_escalate.config.errors import ConfigError, ConfigIssue, Origin, did_you_mean
from langchain_escalate.config.schema import BudgetSettings, ConfigFile, ModelSpec
from langchain_escalate.config.settings import NodeSettings, merge_node

if TYPE_CHECKING:
    from langchain_core.tools import BaseTool

    from langchain_escalate.budget import Budget, Ledger
    from langchain_escalate.middleware import EscalationMiddleware
    from langchain_escalate.models import ModelRef

__all__ = ["EscalateConfig"]

_GraphT = TypeVar("_GraphT")
_GRAPH_ENDPOINTS = frozenset({"__start__", "__end__"})


class EscalateConfig(ConfigFile):
    """A validated ``escalate.yaml``: per-node settings, and builders that use them.

    Get one from ``load_config``. Nothing heavy happens until a builder runs:
    model ids become ``ModelRef`` objects (litellm is imported at the first
    model call), and a ``Budget`` with its ledger is created at the first
    ``build_*`` of a node that has a limit. Every budget with the same
    ``ledger`` URL shares one ledger object, so ``max_usd_total`` holds across
    nodes even with a ``memory://`` ledger. ``close()`` closes the ledgers.

    Example:
        >>> from langchain_escalate import load_config
        >>> cfg = load_config('''
        ... models: {weak: openai/gpt-4.1-mini, strong: anthropic/claude-sonnet-4-6}
        ... defaults: {policy: {ladder: [nudge, escalate, stop]}}
        ... nodes:
        ...   coder: {policy: {mode: takeover}}
        ... ''')
        >>> settings = cfg.for_node("coder")
        >>> settings.policy.ladder, settings.policy.mode, settings.strong.model
        (('nudge', 'escalate', 'stop'), 'takeover', 'anthropic/claude-sonnet-4-6')
    """

    # Set by load_config: the file and its lines, for errors found after loading.
    _origin: Origin = PrivateAttr(default_factory=Origin)
    _model_refs: dict[str, ModelRef] = PrivateAttr(default_factory=dict)
    _ledgers: dict[str, Ledger] = PrivateAttr(default_factory=dict)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @property
    def source(self) -> str:
        """The file the configuration was read from, or ``<string>``."""
        return self._origin.source

    @property
    def node_names(self) -> tuple[str, ...]:
        """The nodes configured under ``nodes``, in file order."""
        return tuple(self.nodes)

    def for_node(self, name: str) -> NodeSettings:
        """Return a node's effective settings: its section deep-merged over the defaults.

        Args:
            name: A key of ``nodes``.

        Returns:
            The merged settings (models, detector, policy, budget, tool, prices).

        Raises:
            ConfigError: ``name`` is not under ``nodes``; the message lists the
                configured nodes and the nearest name.
        """
        section = self.nodes.get(name)
        if section is None:
            known = ", ".join(self.nodes) or "none"
            msg = (
                f"no node {name!r} is configured{did_you_mean(name, self.nodes)}; "
                f"configured nodes: {known}. Add it under nodes: "
                f"(an empty `{name}:` takes the defaults)"
            )
            raise ConfigError([self._origin.issue(("nodes",), msg)])
        return merge_node(
            name, models=self.models, defaults=self.defaults, node=section, prices=self.prices
        )

    def build_node(self, name: str, *, tools: Any = None, **overrides: Any) -> Any:
        r"""Return ``create_escalating_node(...)`` for node ``name``, configured from the file.

        Args:
            name: A key of ``nodes``; also the node's name in records.
            tools: The tools the weak (and, in ``takeover``, strong) model may call.
            **overrides: Any other ``create_escalating_node`` argument, which
                wins over the file: ``weak=my_existing_node``, ``strong=expert_graph``,
                ``state_schema=...``.

        Returns:
            What ``create_escalating_node`` returns, for ``StateGraph.add_node``.

        Raises:
            ConfigError: ``name`` is not configured, or a model the node needs
                is neither in the file nor in ``overrides``.

        Example:
            >>> from langchain_escalate import load_config
            >>> cfg = load_config("models: {weak: openai/a, strong: openai/b}\nnodes: {agent: }")
            >>> node = cfg.build_node("agent", tools=[])  # no model is built yet
        """
        from langchain_escalate.node import create_escalating_node  # noqa: PLC0415 - adapters load on use

        settings = self.for_node(name)
        kwargs = self._kwargs(
            settings, overrides, tools=tools, name=name, **_engine(settings), **_scoring(settings)
        )
        weak = kwargs.pop("weak", None) or self._model(settings, "weak")
        strong = kwargs.pop("strong", None) or self._model(settings, "strong")
        return create_escalating_node(weak, strong, **kwargs)

    def build_tool(self, name: str, **overrides: Any) -> BaseTool:
        """Return ``create_ask_expert_tool(...)`` configured from node ``name``'s settings.

        The tool's ``name``, ``description`` and ``max_uses`` come from the
        node's ``tool`` section; the briefing bound from its policy's
        ``briefing_max_tokens``.

        Args:
            name: A key of ``nodes`` (the node whose weak model gets the tool).
            **overrides: Any other ``create_ask_expert_tool`` argument, which
                wins over the file (``strong=...`` included).

        Returns:
            The ask-expert tool.

        Raises:
            ConfigError: ``name`` is not configured, or there is no strong model.
        """
        from langchain_escalate.tool import create_ask_expert_tool  # noqa: PLC0415 - adapters load on use

        settings = self.for_node(name)
        # No description in the file: the factory's own default, not None.
        unset = {"description"} if settings.tool.description is None else set()
        tool_settings = settings.tool.model_dump(exclude=unset)
        briefing = settings.policy.briefing_max_tokens
        kwargs = self._kwargs(settings, overrides, briefing_max_tokens=briefing, **tool_settings)
        strong = kwargs.pop("strong", None) or self._model(settings, "strong")
        tool: BaseTool = create_ask_expert_tool(strong, **kwargs)
        return tool

    def build_middleware(self, name: str, **overrides: Any) -> EscalationMiddleware:
        """Return ``EscalationMiddleware(...)`` configured from node ``name``'s settings.

        Args:
            name: A key of ``nodes``; also the middleware's name in records
                and in the agent's state.
            **overrides: Any other ``EscalationMiddleware`` argument, which wins
                over the file (``strong=...`` included).

        Returns:
            The middleware, for ``create_agent(..., middleware=[...])``.

        Raises:
            ConfigError: ``name`` is not configured, or there is no strong model.
        """
        from langchain_escalate.middleware import EscalationMiddleware  # noqa: PLC0415 - adapters load on use

        settings = self.for_node(name)
        kwargs = self._kwargs(
            settings, overrides, name=name, **_engine(settings), **_scoring(settings)
        )
        strong = kwargs.pop("strong", None) or self._model(settings, "strong")
        return EscalationMiddleware(strong, **kwargs)

    def check_graph(self, graph: _GraphT) -> _GraphT:
        """Check that every node under ``nodes`` exists in ``graph``, and return ``graph``.

        A section for a node the graph lacks would be silently unused (a
        typo, or a node renamed in code), so it is an error. Nodes of
        subgraphs count. Chain it where the graph is built:
        ``graph = cfg.check_graph(builder).compile(checkpointer=...)``.

        Args:
            graph: A ``StateGraph`` or a compiled graph.

        Returns:
            ``graph``, unchanged.

        Raises:
            ConfigError: One line per configured node the graph lacks, with
                the nearest node name the graph has.
            TypeError: ``graph`` is not a LangGraph graph.
        """
        present = set(_node_names(graph))
        missing = [name for name in self.nodes if name not in present]
        if missing:
            listing = ", ".join(sorted(present)) or "none"
            raise ConfigError(
                [
                    self._origin.issue(
                        ("nodes", name),
                        f"the graph has no node {name!r}{did_you_mean(name, present)}; "
                        f"its nodes: {listing}. Rename this section to match, or remove it",
                    )
                    for name in missing
                ]
            )
        return graph

    def check_model_ids(self) -> list[ConfigIssue]:
        """Check every model id offline (``config.model_ids``), as ``check-config`` does.

        Returns:
            An error per unknown provider, a warning per model litellm's price
            map lacks, each at its line and with the nearest known id.
        """
        from langchain_escalate.config.model_ids import model_id_issues  # noqa: PLC0415 - reads a 1.5 MB map

        return model_id_issues(self, self._origin)

    def close(self) -> None:
        """Close the ledgers the builders opened (SQLite files, PostgreSQL pools)."""
        with self._lock:
            ledgers, self._ledgers = list(self._ledgers.values()), {}
        for ledger in ledgers:
            ledger.close()

    def _kwargs(
        self, settings: NodeSettings, overrides: dict[str, Any], **from_file: Any
    ) -> dict[str, Any]:
        # Every builder gets the node's budget and the file's prices; the caller's arguments win.
        budget = self._budget(settings.budget)
        return {"budget": budget, "prices": dict(self.prices), **from_file, **overrides}

    def _model(self, settings: NodeSettings, role: str) -> ModelRef:
        spec: ModelSpec | None = getattr(settings, role)
        if spec is None:
            msg = (
                f"no {role} model for node {settings.name!r}: set models.{role} (every node) or "
                f"nodes.{settings.name}.models.{role} in the file, or pass {role}= to the builder"
            )
            raise ConfigError([self._origin.issue(("nodes", settings.name), msg)])
        from langchain_escalate.models import ModelRef  # noqa: PLC0415 - adapters load on use

        key = spec.model_dump_json()
        with self._lock:
            ref = self._model_refs.get(key)
            if ref is None:
                ref = self._model_refs[key] = ModelRef(spec.model, **spec.litellm_kwargs())
            return ref

    def _budget(self, settings: BudgetSettings) -> Budget | None:
        if not settings.limited:
            return None
        from langchain_escalate.budget import Budget, open_ledger  # noqa: PLC0415 - adapters load on use

        with self._lock:
            ledger = self._ledgers.get(settings.ledger)
            if ledger is None:
                ledger = self._ledgers[settings.ledger] = open_ledger(settings.ledger)
        return Budget(**{**settings.model_dump(), "ledger": ledger})


def _engine(settings: NodeSettings) -> dict[str, Any]:
    return {"detector": settings.detector, "policy": settings.policy}


def _scoring(settings: NodeSettings) -> dict[str, Any]:
    return {"confidence": settings.confidence, "review_tools": settings.review_tools}


def _node_names(graph: Any) -> Iterator[str]:
    nodes = getattr(graph, "nodes", None)
    if not isinstance(nodes, Mapping):
        msg = f"check_graph() expects a StateGraph or a compiled graph, got {type(graph).__name__}"
        raise TypeError(msg)
    for name, node in nodes.items():
        if name not in _GRAPH_ENDPOINTS:
            yield name
        # A StateGraph's node spec holds a compiled subgraph in `runnable`; a
        # compiled graph's node holds it in `bound`.
        inner = getattr(node, "runnable", None) or getattr(node, "bound", None)
        if isinstance(getattr(inner, "nodes", None), Mapping) and hasattr(inner, "get_subgraphs"):
            yield from _node_names(inner)
