"""`data.source = sns_dcm`: SNS DCM pulses with their beam settings, as the sample contract.

The SNS train and test flows keep their own path (`data_preparation.pipeline.prepare_samples`,
with streaming, cache, references and the threshold in operator units); this adaptor gives the
same pulses to code that works on the contract (e.g. `--predict`-style tools).
"""

from __future__ import annotations

import numpy as np

from data_preparation.sources.contract import Samples


def load(config, location: str | None = None, layout: dict | None = None,
         files: list[str] | None = None) -> Samples:
    """Pulses of `data.dataset_loc` (normal/anomaly folders) with settings, in time order."""
    from data_preparation.pipeline import prepare_samples

    if files is not None:
        raise ValueError("data.source=sns_dcm: score new DCM archives with "
                         "`driver.py --test --run DIR --data DIR`.")
    samples = prepare_samples(config, dataset_loc=location, progress=False)
    traces = samples.traces.to_array() if samples.streaming else samples.traces
    traces = traces[..., None] if traces.ndim == 2 else traces
    inputs = {"trace": np.asarray(traces, dtype=np.float32)}
    if samples.settings.shape[1]:
        inputs["settings"] = samples.settings
    return Samples(
        inputs=inputs,
        label=samples.label.astype(np.int64),
        class_names=("normal", "errant"),
        group=samples.group.astype(np.int64),
        ids=np.asarray([samples.files[i] for i in samples.file_index], dtype=object),
        timestamp_ns=samples.timestamp_ns,
        layout={"class_names": ["normal", "errant"]},
        ledger=samples.ledger,
    )
