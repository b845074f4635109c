"""The driver's `--export`, `--watch` and `--epics-input` verbs: resolve the run, set up logging,
call the flow."""

from __future__ import annotations

from pathlib import Path


def run_live(args, config, log_dir: Path, prefix: str) -> None:
    """`--export` then (or only) `--watch` or `--epics-input`, on `--run` or the newest run under
    run.output_dir; `--epics PREFIX` publishes the scores on `config.live.epics_interfaces`."""
    from live.export import FORMATS, export_run, parse_formats
    from utils.logs import add_run_log, start_logging
    from utils.run_folder import newest_run

    logger = start_logging(log_dir, "live", quiet=args.quiet, debug=args.debug, prefix=prefix)
    run_dir = Path(args.run) if args.run is not None else newest_run(Path(config.run.output_dir))
    if run_dir.is_dir():
        add_run_log(run_dir, "live", debug=args.debug, prefix=prefix)
    progress = not args.quiet
    if args.export:
        formats = parse_formats(args.format) if args.format else FORMATS
        result = export_run(run_dir, formats, progress=progress)
        logger.info("export done: %s", result.out_dir)
        for name, entry in result.parity["formats"].items():
            shown = entry.get("error") or (f"max |dscore| {entry['max_abs_diff']:.2e}, "
                                           f"dPR AUC {entry['delta_pr_auc']}, {entry['bytes']} bytes")
            logger.info("  %-22s %s", name, shown)
    if args.watch is None and not args.epics_input:
        return
    publishers = ()
    if args.epics:
        from live.epics import EpicsPublisher

        publishers = (EpicsPublisher.start(args.epics, config.live.epics_interfaces,
                                           duplicate_search_s=config.live.epics_duplicate_search_s),)
    artefact = (args.format or "saved_model").split(",")[0].strip()
    try:
        if args.epics_input:
            from live.epics_source import run_epics_input

            run_epics_input(run_dir, config.live, artefact=artefact,
                            pulse_rate_hz=config.threshold.pulse_rate_hz,
                            idle_exit_s=args.idle_exit, echo=not args.quiet,
                            publishers=publishers)
        else:
            from live.watch import watch

            watch(run_dir, args.watch, artefact=artefact, settings_dir=args.settings,
                  poll_s=args.poll, idle_exit_s=args.idle_exit, echo=not args.quiet,
                  publishers=publishers)
    finally:
        for publisher in publishers:
            publisher.stop()
