"""Framework integrations (LlamaIndex, LangChain); each is imported only when its extra is installed."""
