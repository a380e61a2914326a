--- mydb.handlers.resolver_ours: the merge resolver "ours" (mydb.resolvers):
-- a conflict keeps the value of the branch merged into.
return { name = "ours", resolve = function(c) return c.ours end }
