"""`llm_ranker`: a causal LM scores P(yes) vs P(no) from a prompt template (see model.py)."""

from autorec.models.llm_ranker.config import LLMRankerConfig, PromptSettings
from autorec.models.llm_ranker.model import LLMRanker

__all__ = ["LLMRanker", "LLMRankerConfig", "PromptSettings"]
