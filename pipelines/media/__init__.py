"""Media stages of ``umbenet prep``: probe a clip, sample its frames, extract its audio, crop faces.

Every per-clip problem is a :class:`MediaError` (or, for audio, an ``AudioResult`` with a
``missing_reason``) carrying a short reason for the prep report. Needs ``ffmpeg``/``ffprobe`` on
PATH. ``FaceCropper`` imports facenet-pytorch (and torch) only when constructed.
"""
from .audio import NO_AUDIO_STREAM, AudioResult, extract_audio
from .faces import FALLBACKS, FaceCropper, FaceCrops, scene
from .frames import (
    SampledFrames,
    natural_sorted,
    read_frame_folder,
    read_video_frames,
    read_video_frames_and_audio,
    sample_indices,
)
from .probe import MediaError, MediaInfo, probe

__all__ = [
    "AudioResult",
    "FALLBACKS",
    "FaceCropper",
    "FaceCrops",
    "MediaError",
    "MediaInfo",
    "NO_AUDIO_STREAM",
    "SampledFrames",
    "extract_audio",
    "natural_sorted",
    "probe",
    "read_frame_folder",
    "read_video_frames",
    "read_video_frames_and_audio",
    "sample_indices",
    "scene",
]
