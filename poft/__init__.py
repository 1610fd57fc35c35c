"""poft — reference harness for preference-oriented supervised fine-tuning (PoFT).

Fan et al., "Preference-Oriented Supervised Fine-Tuning: Favoring Target Model Over Aligned Large
Language Models", AAAI 2025, arXiv:2412.12865.
"""

__version__ = "0.1.0"
