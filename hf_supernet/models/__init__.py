from .conformer import *  # noqa: F403
from .supernet_conformer import *  # noqa: F403
from .foldable import *  # noqa: F403
