from .supernet_conformer import *  # noqa: F403
