"""The ``openai`` backend, in four parts: ``transport`` (aiohttp, settings, the one retry helper,
the stream watchdog), ``sse`` (event framing and one chat completion read from it, sans IO),
``tokens`` (counts and where they came from) and ``backend`` (the backend itself)."""

from pytest_mathperf.backends.openai.backend import OpenAIBackend
from pytest_mathperf.backends.openai.sse import ChatStream, EventDecoder
from pytest_mathperf.backends.openai.transport import OpenAISettings

__all__ = ["ChatStream", "EventDecoder", "OpenAIBackend", "OpenAISettings"]
