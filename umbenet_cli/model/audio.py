"""Audio stream E_a (eq. 1): a small 1-D CNN trained from scratch, over waveform or log-mel.

The paper's "imbalanced" encoder gives vision most of the parameters; this branch is kept small
(six strided conv layers, then two linear layers to the model width), as in the authors' code.
Padding after a clip's real length is masked out of the time pooling.

Two settings make the six-layer stack trainable at the library's Adam 2e-3 (both parameter-free,
both on by default, both off for checkpoints saved before them; numbers from
``benchmarks/controlled/audio_depth.py``):

- ``residual``: layers 2..n add the mean of their input over the conv's own window (same kernel
  and stride). Without it, one early Adam step moved the encoder's output about twice as far as
  the spread between clips (0.65x at two layers); on a weak cue the stack drifted into giving
  every clip nearly the same vector and stayed at chance. Gradients did not vanish, and at
  Adam 5e-4 the old stack did learn: a step-size problem of the plain stack, not lost information.
- ``standardize`` (waveform): each clip is scaled to zero mean and unit variance over its real
  samples. Speech-level audio (|x| ~ 0.01-0.1) is otherwise a small ripple on the first conv's
  bias (between-clip variance 0.2% of the first layer's output), and the six-layer stack
  collapsed to one output for every clip.

Neither looks past a clip's real samples, so padding and batch companions still cannot change it.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from umbenet_cli.model.config import AudioConfig

# (kernel, stride) per conv layer over the raw 16 kHz waveform: total stride 4*4*2*2*2*2 = 256,
# i.e. one feature every 16 ms. Over log-mel frames (10 ms hop) the stride is kept small.
_WAVE_LAYERS = [(10, 4), (8, 4), (4, 2), (4, 2), (4, 2), (4, 2)]
_MEL_LAYERS = [(3, 1), (3, 2), (3, 1), (3, 2), (3, 1), (3, 1)]
N_MELS = 80
MEL_HOP = 160  # whisper.audio's hop length in samples


def log_mel(wave: torch.Tensor) -> torch.Tensor:
    """[B, S] 16 kHz waveform -> [B, N_MELS, S // MEL_HOP] log-mel, Whisper's recipe per clip.

    ``whisper.audio.log_mel_spectrogram`` floors the spectrogram at 8 (log10 units) below the
    maximum of the *whole tensor*: called on a batch, a clip's features depend on the loudest
    other clip in it, so a prediction would change with its batch companions. Here the floor is
    each clip's own maximum minus 8; on one clip the two are identical."""
    from whisper.audio import HOP_LENGTH, N_FFT, mel_filters  # torch-only; no model download

    wave = wave.float()
    window = torch.hann_window(N_FFT, device=wave.device)
    stft = torch.stft(wave, N_FFT, HOP_LENGTH, window=window, return_complex=True)
    mel = mel_filters(wave.device, N_MELS) @ stft[..., :-1].abs() ** 2
    log_spec = mel.clamp(min=1e-10).log10()
    floor = log_spec.amax(dim=(-2, -1), keepdim=True) - 8.0
    return (torch.maximum(log_spec, floor) + 4.0) / 4.0


class ChannelNorm(nn.LayerNorm):
    """LayerNorm over channels at each time step of [B, C, L]: unlike GroupNorm or BatchNorm it
    pools no statistics over time, so zero padding after a clip's end cannot leak into it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.transpose(1, 2)).transpose(1, 2)


class AudioEncoder(nn.Module):
    def __init__(self, dim: int, cfg: AudioConfig) -> None:
        super().__init__()
        self.cfg = cfg
        plan = (_WAVE_LAYERS if cfg.input == "waveform" else _MEL_LAYERS)
        plan = (plan * ((cfg.conv_layers + len(plan) - 1) // len(plan)))[: cfg.conv_layers]
        self.plan = plan
        layers: list[nn.Module] = []
        c_in = 1 if cfg.input == "waveform" else N_MELS
        for kernel, stride in plan:
            layers += [nn.Conv1d(c_in, cfg.channels, kernel, stride), ChannelNorm(cfg.channels), nn.GELU()]
            c_in = cfg.channels
        self.convs = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Linear(cfg.channels, cfg.hidden), nn.GELU(),
                                  nn.Dropout(cfg.dropout), nn.Linear(cfg.hidden, dim))

    @property
    def num_samples(self) -> int:
        """Fixed input length S in samples (clips are cropped or zero padded to it)."""
        return int(round(self.cfg.seconds * self.cfg.sample_rate))

    def _features(self, wave: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if self.cfg.input == "waveform":
            if not self.cfg.standardize:
                return wave.unsqueeze(1)
            # Statistics over the real samples only, and the padding left at zero.
            keep = (torch.arange(wave.shape[-1], device=wave.device)[None, :] < lengths[:, None]).to(wave.dtype)
            n = keep.sum(-1, keepdim=True).clamp(min=1)
            centred = (wave - (wave * keep).sum(-1, keepdim=True) / n) * keep
            var = (centred ** 2).sum(-1, keepdim=True) / n
            return (centred * torch.rsqrt(var + 1e-7)).unsqueeze(1)
        return log_mel(wave)[..., :-1]

    def _layer(self, i: int, x: torch.Tensor) -> torch.Tensor:
        """Conv layer i (conv, ChannelNorm, GELU, and the residual from layer 2 on) on x [B, C, L]."""
        kernel, stride = self.plan[i]
        conv, norm, act = self.convs[3 * i: 3 * i + 3]
        y = act(norm(conv(x)))
        if self.cfg.residual and i > 0:
            # Same window as the conv: output t still sees only input [t*stride, t*stride+kernel).
            y = y + F.avg_pool1d(x, kernel, stride)
        return y

    def conv_outputs(self, x: torch.Tensor):
        """Yield each conv layer's output [B, C, L_i] for features x [B, C_in, S'] (diagnostics:
        benchmarks/controlled/audio_depth.py); only the current layer's output is kept."""
        for i in range(len(self.plan)):
            x = self._layer(i, x)
            yield x

    def _out_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        n = lengths if self.cfg.input == "waveform" else torch.div(lengths, MEL_HOP, rounding_mode="floor")
        for kernel, stride in self.plan:
            n = torch.div(n - kernel, stride, rounding_mode="floor") + 1
        return n.clamp(min=1)

    def forward(self, wave: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """wave [B, S] float in [-1, 1] at cfg.sample_rate, lengths [B] real samples -> F_a [B, D]."""
        lengths = lengths.to(wave.device)
        h = self._features(wave, lengths)
        for i in range(len(self.plan)):
            h = self._layer(i, h)  # -> [B, C, L]
        n = self._out_lengths(lengths).clamp(max=h.shape[-1])
        keep = torch.arange(h.shape[-1], device=h.device)[None, :] < n[:, None]
        w = keep.unsqueeze(1).to(h.dtype)
        pooled = (h * w).sum(-1) / w.sum(-1)
        return self.head(pooled)
