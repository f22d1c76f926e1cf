"""Result records in ExecuTorch's benchmark format (`BenchmarkMetric` of its Android benchmark app):

    {"benchmarkModel": {"name", "backend", "quantization"}, "metric": "name(unit)",
     "actualValue": number, "targetValue": number, "deviceInfo": {"device", "arch", "os", "totalMem", ...}}

so dashboards that read ExecuTorch results read ours. Our raw samples and telemetry sit next to them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from device_tests.run_record import DeviceRun

RECORD_KEYS = ("benchmarkModel", "metric", "actualValue", "targetValue", "deviceInfo")


def _device_info(info: dict[str, Any] | None, serial: str) -> dict[str, Any]:
    info = info or {}
    return {"device": info.get("brand", ""), "arch": info.get("model", ""),
            "os": f"Android {info.get('release', '')}".strip(), "totalMem": (info.get("ram_mb") or 0) * 1024 * 1024,
            "availMem": 0, "soc": info.get("soc", ""), "abi": info.get("abi", ""), "serial": serial,
            "simulated": bool(info.get("simulated"))}


def executorch_records(run: DeviceRun, summary: dict[str, Any], bundle: dict[str, Any]) -> list[dict[str, Any]]:
    """ExecuTorch-style records for one device's summary."""
    used = {launch["delegate"].get("used") or launch["delegate"].get("requested") for launch in run.launches
            if launch.get("delegate")}
    backend = "litert-" + ("+".join(sorted(used)) if used else "benchmark_model" if run.benchmark_model else "none")
    model = {"name": bundle.get("model") or "unknown", "backend": backend,
             "quantization": bundle.get("quantization") or "unknown"}
    device = _device_info(run.info, run.serial)
    stats = summary["stats"]
    metrics: list[tuple[str, float | None]] = []

    def add(metric: str, block: dict | None, key: str) -> None:
        metrics.append((metric, block.get(key) if block else None))

    add("model_load_time(ms)", stats["load_ms"], "median")
    add("first_image_latency(ms)", stats["first_image_ms"], "median")
    add("avg_inference_latency(ms)", stats["e2e_ms"], "mean")
    for key in ("min", "median", "p90", "trimmed_mean"):
        add(f"e2e_latency_{key}(ms)", stats["e2e_ms"], key)
    add("text_encoder_latency_median(ms)", stats["text_ms"], "median")
    add("denoise_step_latency_median(ms)", stats["denoise_step_ms"], "median")
    add("vae_decode_latency_median(ms)", stats["decode_ms"], "median")
    metrics.append(("peak_memory_pss(MB)", stats["peak_pss_mb"]))
    sustained = summary.get("sustained")
    if sustained:
        windows = sustained.get("windows") or {}
        metrics.append(("sustained_latency_change(%)", windows.get("change_pct")))
        onset = sustained.get("throttle_onset")
        metrics.append(("throttle_onset(s)", onset["t_s"] if onset else None))
    live = summary.get("live_summary")
    if live:  # `banana profile --live`: the stream's frame rate, frame times and the governor
        frame, fps, ttff = live["frame_ms"] or {}, live["fps"], live["ttff_ms"] or {}
        metrics += [("live_fps_median(fps)", fps["median"]),
                    ("live_fps_last_over_first(ratio)", fps["last_over_first"]),
                    ("live_frame_time_p50(ms)", frame.get("p50")), ("live_frame_time_p90(ms)", frame.get("p90")),
                    ("live_frame_time_p99(ms)", frame.get("p99")),
                    ("live_frames_over_budget(%)", live["over_budget"]["pct"]),
                    ("live_time_to_first_frame_p50(ms)", ttff.get("p50")),
                    ("live_time_to_first_frame_p90(ms)", ttff.get("p90")),
                    ("live_frames_shown(count)", live["shown"]), ("live_governor_decisions(count)", live["decisions"]),
                    ("live_throttle_onset(s)", (live["throttle_onset"] or {}).get("t_s"))]
    for result in run.benchmark_model:
        metrics.append((f"benchmark_model_{result['graph_name']}_inference_avg(ms)", result["inference_avg_us"] / 1e3))
        metrics.append((f"benchmark_model_{result['graph_name']}_init(ms)", result["init_us"] / 1e3))
    targets = {"live_fps_median(fps)": live["target_fps"]} if live else {}
    return [{"benchmarkModel": model, "metric": metric, "actualValue": float(value),
             "targetValue": targets.get(metric, 0), "deviceInfo": device}
            for metric, value in metrics if value is not None]
