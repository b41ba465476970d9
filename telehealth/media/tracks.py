"""Synthetic media for test peers: a moving video pattern and a tone, paced in real time."""

from __future__ import annotations

import fractions
import math

import numpy as np
from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack
from av import AudioFrame, VideoFrame

AUDIO_RATE = 48_000
AUDIO_PTIME = 0.02


class PatternVideoTrack(VideoStreamTrack):
    """A bar sweeping over a gradient, so every frame differs (an encoder cannot skip it)."""

    def __init__(self, width: int = 640, height: int = 480) -> None:
        super().__init__()
        self.width = width
        self.height = height
        self.sent = 0
        ramp = np.linspace(0, 255, width, dtype=np.uint8)
        self._base = np.repeat(np.tile(ramp, (height, 1))[:, :, None], 3, axis=2)

    async def recv(self) -> VideoFrame:
        pts, time_base = await self.next_timestamp()
        image = self._base.copy()
        x = (self.sent * 8) % self.width
        image[:, x:x + 16, :] = (255, 64, 0)
        frame = VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts = pts
        frame.time_base = time_base
        self.sent += 1
        return frame


class ToneAudioTrack(AudioStreamTrack):
    """A 440 Hz tone in 20 ms frames."""

    def __init__(self, frequency: float = 440.0) -> None:
        super().__init__()
        self.frequency = frequency
        self._samples = 0

    async def recv(self) -> AudioFrame:
        # The base class paces 20 ms frames in real time; only the content is ours.
        frame = await super().recv()
        count = int(AUDIO_RATE * AUDIO_PTIME)
        t = (np.arange(count) + self._samples) / AUDIO_RATE
        tone = (0.2 * 32767 * np.sin(2 * math.pi * self.frequency * t)).astype(np.int16)
        self._samples += count
        out = AudioFrame.from_ndarray(tone.reshape(1, -1), format="s16", layout="mono")
        out.sample_rate = AUDIO_RATE
        out.pts = frame.pts
        out.time_base = fractions.Fraction(1, AUDIO_RATE)
        return out
