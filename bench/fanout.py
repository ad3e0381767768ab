def run(database, seeded): raise NotImplementedError
