"""Model card templates of hf_supernet, shipped in the package as ``hf_supernet.model_cards`` (pyproject.toml maps this
folder there). ``subnet_card.md`` is the default card of a published subnet (``hf_supernet.publishing.cards``)."""
