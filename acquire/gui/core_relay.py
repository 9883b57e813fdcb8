"""The core's events, delivered on the GUI thread, for widgets that draw.

pairscope's cores use psygnal events (`acquire.gui` sets the backend): a
psygnal signal calls its listeners in the thread that emits, and a core
emits from many threads (Micro-Manager's callback thread, a camera's
sequence thread, pairscope's workers, pymmcore-plus' MDA runner). Qt
widgets may only be touched from the GUI thread. `GuiCore` is the window's
core as the pymmcore-widgets controls see it: every call goes to the real
core, but its ``events`` and ``mda.events`` are copies that `CoreEventRelay`
re-emits on the GUI thread, in order. While an operation runs, the relay is
held: what the core emits meanwhile is dropped, and `resync` shows the
core's state afterwards.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from pymmcore_plus.core.events import CMMCoreSignaler
from pymmcore_plus.mda.events import MDASignaler
from PySide6.QtCore import QObject, Signal, Slot

if TYPE_CHECKING:
    from collections.abc import Callable

    from psygnal import SignalGroup
    from pymmcore_plus import CMMCorePlus

__all__ = ["CoreEventRelay", "GuiCore"]

_log = logging.getLogger(__name__)


class CoreEventRelay(QObject):
    """Re-emits a core's events (and its MDA runner's) on the GUI thread.

    Create it on the GUI thread. Events emitted there are re-emitted at
    once; from any other thread they are queued to it.

    Parameters
    ----------
    core : CMMCorePlus
        A core with psygnal events.
    parent : QObject, optional
        Qt parent.

    Attributes
    ----------
    events : CMMCoreSignaler
        The core's events, on the GUI thread.
    mda_events : MDASignaler
        The MDA runner's events, on the GUI thread.

    """

    _deliver = Signal(str, str, object)

    def __init__(self, core: CMMCorePlus, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.core = core
        self.events = CMMCoreSignaler()
        self.mda_events = MDASignaler()
        self._held = False
        self._gui_thread = threading.current_thread()
        self._deliver.connect(self._emit_here)
        self._sources: list[tuple[SignalGroup, str, Callable[..., None]]] = []
        self._listen("core", core.events)  # type: ignore[arg-type]
        self._listen("mda", core.mda.events)  # type: ignore[arg-type]

    def _listen(self, group: str, source: SignalGroup) -> None:
        for name in source:
            handler = self._forwarder(group, name)
            source[name].connect(handler)
            self._sources.append((source, name, handler))

    def _forwarder(self, group: str, name: str) -> Callable[..., None]:
        def forward(*args: Any) -> None:
            if self._held:
                return
            if threading.current_thread() is self._gui_thread:
                self._emit_here(group, name, args)
            else:
                self._deliver.emit(group, name, args)  # queued to the GUI thread

        return forward

    @Slot(str, str, object)
    def _emit_here(self, group: str, name: str, args: tuple[Any, ...]) -> None:
        if self._held:
            return
        target = self.events if group == "core" else self.mda_events
        try:
            target[name].emit(*args)
        except Exception:
            # a widget's fault must not reach the core call that emitted
            # (a stage move, an acquisition's frame): log it and go on
            _log.exception("a microscope control failed on %s.%s", group, name)

    @property
    def held(self) -> bool:
        """Whether events are being dropped (an operation runs)."""
        return self._held

    def hold(self) -> None:
        """Drop the core's events until `release` (an operation starts)."""
        self._held = True

    def release(self) -> None:
        """Deliver events again."""
        self._held = False

    def disconnect_core(self) -> None:
        """Stop listening to the core (before it closes)."""
        self._held = True
        for source, name, handler in self._sources:
            source[name].disconnect(handler)
        self._sources.clear()


class _MdaView:
    """``core.mda`` with its events replaced by the relay's."""

    def __init__(self, runner: Any, events: MDASignaler) -> None:
        self._runner = runner
        self.events = events

    def __getattr__(self, name: str) -> Any:
        return getattr(self._runner, name)


class GuiCore:
    """The window's core as its widgets see it: events on the GUI thread.

    Every attribute but ``events`` and ``mda.events`` is the real core's.

    Parameters
    ----------
    core : CMMCorePlus
        The real core.
    relay : CoreEventRelay
        Its relay.

    """

    def __init__(self, core: CMMCorePlus, relay: CoreEventRelay) -> None:
        self._core = core
        self.events = relay.events
        self.mda = _MdaView(core.mda, relay.mda_events)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._core, name)
