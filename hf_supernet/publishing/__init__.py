"""Deploy many: publish each selected subnet of a supernet as its own self-contained Hub model repo.

- :func:`publish_subnets` extracts the subnets, writes one folder per subnet (weights, config, processor, model
  card, Pareto plot) and uploads each to ``{repo_prefix}-{name}``;
- :mod:`.cards` builds the model cards from the ``model_cards/subnet_card.md`` template shipped in the package;
- :mod:`.hub` checks Hub access and wraps ``create_repo`` / ``upload_folder`` with retries of transient failures.
"""

from .cards import CardMetadata, LoadingInfo, default_template, loading_info, subnet_card
from .hub import HubAccessError, check_hub_access, upload_folder_to_repo
from .publish import PublishedSubnet, PublishError, publish_subnets, push_supernet, repo_id_for, select_entries

__all__ = [
    "CardMetadata",
    "HubAccessError",
    "LoadingInfo",
    "PublishError",
    "PublishedSubnet",
    "check_hub_access",
    "default_template",
    "loading_info",
    "publish_subnets",
    "push_supernet",
    "repo_id_for",
    "select_entries",
    "subnet_card",
    "upload_folder_to_repo",
]
