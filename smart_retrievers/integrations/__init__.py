"""Framework integrations (LlamaIndex, LangChain, LanceDB): translators over the core; each is imported only when its extra is installed."""
