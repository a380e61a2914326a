--- mydb.handlers.resolver_newest: the merge resolver "newest"
-- (mydb.resolvers): a conflict keeps the value of the side whose commit
-- that last changed the entry is later (ours on a tie).
return {
  name = "newest",
  resolve = function(c)
    if (c.theirs_time or -math.huge) > (c.ours_time or -math.huge) then return c.theirs end
    return c.ours
  end,
}
