"""Print the targets table (markdown) from results.json: each target, the measured ratio, met or not.

    python benchmarks/perf/report.py [results.json]
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "results.json"
    r = json.loads(path.read_text())
    m = r.get("machine", {})
    print(f"machine: {m.get('cpu_model')}, {m.get('logical_cpus')} logical CPUs, {m.get('mem_gib')} GiB, "
          f"torch {m.get('torch')} ({m.get('torch_threads')} threads), load average at start {m.get('load_avg_at_start')}; "
          f"mode {r.get('mode', '?')}; shared with other jobs\n")
    rows = []
    pb = r.get("prep_vs_baseline", {})
    for set_name, d in pb.items():
        for k, v in d.get("speedup_over_baseline_wall", {}).items():
            inproc = d["speedup_over_baseline_in_process"][k]
            rows.append((f"prep >= 5x the public-DFER baseline ({set_name}, {d['clips']} clips): {k}",
                         f"x{v:.2f} wall, x{inproc:.2f} in-process", verdict(v >= 5)))
    for mode, d in r.get("prep_stages", {}).items():
        x = d["ratio_prep_total_over_decode_plus_faces"]
        rows.append((f"prep total <= 1.5x its decode + face detection ({d['clips']} clips, {mode})",
                     f"{x:.2f}x (media stage alone {d['ratio_prep_media_stage_over_decode_plus_faces']:.2f}x)",
                     verdict(x <= 1.5)))
    mem = r.get("prep_memory")
    if mem:
        lo, hi = min(mem["sizes"]), max(mem["sizes"])
        x = mem["ratio_peak_largest_over_smallest"]
        rows.append((f"prep peak memory {hi} clips <= 1.2x {lo} clips",
                     f"{x:.2f}x ({mem['runs'][str(lo)]['maxrss_mib']:.0f} -> {mem['runs'][str(hi)]['maxrss_mib']:.0f} MiB)",
                     verdict(x <= 1.2)))
    cache = r.get("cache", {}).get("frame_emb")
    if cache:
        for k, v in cache["fraction_of_numpy_load_speed"].items():
            if k.startswith("read_features") or k.startswith("prototype"):
                rows.append((f"cache read >= 0.5x numpy.load speed: {k}",
                             f"{v:.2f}x ({cache['GB_per_s'][k]:.2f} vs {cache['GB_per_s']['numpy.load (reference)']:.2f} GB/s)",
                             verdict(v >= 0.5) + (" (not library code)" if k.startswith("prototype") else "")))
    wa = r.get("cache", {}).get("with_audio")
    if wa:
        for k, v in wa["fraction_of_numpy_load_speed"].items():
            if k.startswith("read_features"):
                rows.append((f"cache read >= 0.5x numpy.load speed: {k}", f"{v:.2f}x", verdict(v >= 0.5)))
    for config, d in r.get("train", {}).items():
        x = d["ratio_step_over_class_prompts"]
        rows.append((f"train step <= 1.3x class-prompt fwd+bwd ({config}, batch {d['batch']})",
                     f"{x:.2f}x (step {d['times']['training step']['median_s']:.3f} s, class prompts the plain way "
                     f"{d['times']['class prompts fwd+bwd the plain way']['median_s']:.3f} s; step / the library's own "
                     f"shared-prefix pass {d['ratio_step_over_library_class_prompts']:.2f}x)", verdict(x <= 1.3)))
    gpu = r.get("gpu")
    if gpu and "targets" in gpu:
        t = gpu["targets"]
        f = t["clip_extraction_fraction_of_bf16_bound"]
        if f["datasheet"] is not None:
            rows.append((f"GPU ({gpu['device']}): CLIP image tower >= 40% of the bf16 bound",
                         f"{100 * f['datasheet']:.0f}% of datasheet, {100 * f['matmul']:.0f}% of matmul; "
                         f"embed stage end to end {100 * (f['embed_stage_end_to_end_datasheet'] or 0):.0f}%",
                         verdict(f["datasheet"] >= 0.4)))
        for k, v in t["mafw_5_fold_hours"].items():
            rows.append((f"GPU ({gpu['device']}): MAFW five folds < 1 h, {k}, 30 epochs per stage",
                         f"{v['train_30_epochs']:.2f} h training (+ prep: {v['with_prep']:.2f} h)",
                         verdict(v["train_30_epochs"] < 1.0)))
    print("| target | measured | |")
    print("|---|---|---|")
    for what, val, ok in rows:
        print(f"| {what} | {val} | {ok} |")
    if "gpu" not in r:
        print("\nGPU items: not measured here (no CUDA device); run benchmarks/perf/gpu_bench.py on a GPU machine.")


if __name__ == "__main__":
    main()
