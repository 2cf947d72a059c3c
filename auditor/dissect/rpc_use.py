"""One word for what happened at a discovered RPC endpoint, the same in every output.

`used` (some flow reached it: handshake, mid-stream data or a UDP answer), `refused` (flows to it
were refused by RST or ICMP, none got through), `never answered` (flows to it got no answer), or
`advertised only` (an EPM reply or DCOM binding named it and nobody tried it).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

ENDPOINT_USES = ("used", "refused", "never answered", "advertised only")


def endpoint_use(endpoints: pd.DataFrame) -> np.ndarray:
    """Per endpoint row, one of ENDPOINT_USES (from its used/rejected/unanswered columns)."""
    if endpoints.empty:
        return np.array([], dtype=object)
    used = endpoints["used"].astype(bool).to_numpy()
    rejected = endpoints["rejected"].astype(bool).to_numpy()
    unanswered = endpoints["unanswered"].astype(bool).to_numpy()
    return np.select([used, rejected, unanswered], list(ENDPOINT_USES[:3]),
                     default=ENDPOINT_USES[3]).astype(object)
