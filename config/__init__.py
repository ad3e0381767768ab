"""Settings from the environment, below every layer: the API, the resolvers and the jobs all read them."""
