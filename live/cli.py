"""The driver's `--export`, `--watch` and `--epics-input` verbs: resolve the run, set up logging,
call the flow."""

from __future__ import annotations

from pathlib import Path


def run_live(args, config, log_dir: Path, prefix: str) -> Path:
    """`--export` then (or only) `--watch` or `--epics-input`, on `--run` or the newest complete SNS
    run under run.output_dir; `--epics PREFIX` publishes the scores on
    `config.live.epics_interfaces`. Returns the export folder, or the run folder when only
    scoring."""
    from live.export import check_parity, export_run
    from live.formats import BASE_FORMAT, parse_formats
    from parser.configs import require_source, run_source
    from utils.logs import add_run_log, start_logging
    from utils.status import SNS_SOURCE, newest_complete_run

    logger = start_logging(log_dir, "live", quiet=args.quiet, debug=args.debug, prefix=prefix)
    verb = "--export" if args.export else "--epics-input" if args.epics_input else "--watch"
    if args.run is None:  # the newest complete SNS run: export and watch score DCM pulses
        run_dir, _ = newest_complete_run(Path(config.run.output_dir), (SNS_SOURCE,), verb,
                                        run_source)
    else:
        run_dir = Path(args.run)
        if (run_dir / "config.yaml").is_file():
            require_source(run_dir, (SNS_SOURCE,), verb)
    if run_dir.is_dir():
        add_run_log(run_dir, "live", debug=args.debug, prefix=prefix)
    progress = not args.quiet
    done = run_dir
    if args.export:
        formats = parse_formats(args.format) if args.format else None  # None: every format
        result = export_run(run_dir, formats, progress=progress)
        logger.info("export done: %s", result.out_dir)
        done = result.out_dir
        for name, entry in result.parity["formats"].items():
            shown = entry.get("error") or (f"max |dscore| {entry['max_abs_diff']:.2e}, "
                                           f"dPR AUC {entry['delta_pr_auc']}, {entry['bytes']} bytes")
            logger.info("  %-22s %s", name, shown)
        check_parity(result)
    if args.watch is None and not args.epics_input:
        return done
    publishers = ()
    if args.epics:
        from live.epics import EpicsPublisher

        publishers = (EpicsPublisher.start(args.epics, config.live.epics_interfaces,
                                           duplicate_search_s=config.live.epics_duplicate_search_s),)
    artefact = (args.format or BASE_FORMAT).split(",")[0].strip()
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
    return done

