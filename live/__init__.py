"""Live scoring and deployable models: the flow that turns a run into artefacts and scores pulses.

`live.serving` builds the serving function (raw windows in, score out, the run's scaling built
in); `live.export` writes it as a SavedModel and LiteRT models with a parity check;
`live.references` keeps the reference pulses of the live reference rule in a bounded buffer;
`live.scorer` scores pulses with an exported artefact; `live.watch` follows a folder of DCM files
as they land. Nothing here trains; the flows' preprocessing code is reused, never copied.
"""
