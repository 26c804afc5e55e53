"""Pure math of DASH: group advantages, gradient filtering (numpy) and the policy loss (torch).

`advantages` and `filtering` import numpy only, so the sampler and the control plane can use
them without torch; import `shared.algo.loss` explicitly where torch is available.
"""

from shared.algo.advantages import group_advantages
from shared.algo.filtering import keep_mask

__all__ = ["group_advantages", "keep_mask"]
