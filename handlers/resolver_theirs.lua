--- mydb.handlers.resolver_theirs: the merge resolver "theirs"
-- (mydb.resolvers): a conflict keeps the value of the revision merged in.
return { name = "theirs", resolve = function(c) return c.theirs end }
