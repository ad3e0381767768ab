"""arq jobs and the small interfaces (queue, events) the API uses to reach them."""
