"""Tables that publish their changes to the realtime channel `table:<name>`, with python-socketio's client.

A table opts in with `"realtime": true` (create or PATCH schema); every changed row becomes a message
(event INSERT/UPDATE/DELETE, payload {schema, table, operation, record, old_record}) delivered from the
log like any other. While the table has row-level security only admins may subscribe; clients never
publish there.
"""

import secrets

import pytest

from test_realtime_channels import Client, raw_sql, sign_up


def new_table(server, realtime=None, rls=False, name=None):
    name = name or f"rt_{secrets.token_hex(4)}"
    body = {"tableName": name, "rlsEnabled": rls, "columns": [
        {"columnName": "title", "type": "string", "isNullable": False},
        # A column named like the trigger's row aliases once were: the rows must still be whole.
        {"columnName": "n", "type": "integer", "isNullable": True},
        {"columnName": "o", "type": "integer", "isNullable": True}]}
    if realtime is not None:
        body["realtime"] = realtime
    r = server.post("/api/database/tables", json=body)
    assert r.status_code == 201, r.text
    return name


def schema_of(server, table):
    r = server.get(f"/api/database/tables/{table}/schema")
    assert r.status_code == 200, r.text
    return r.json()


def patch_schema(server, table, body):
    return server.request("PATCH", f"/api/database/tables/{table}/schema", json=body)


def channel_patterns(server):
    r = server.get("/api/realtime/channels")
    assert r.status_code == 200, r.text
    return {c["pattern"]: c for c in r.json()}


def records(server, table, method="POST", params=None, json=None):
    r = server.request(method, f"/api/database/records/{table}", params=params, json=json,
                       headers={"Prefer": "return=representation"})
    assert r.status_code in (200, 201), r.text
    return r.json()


def stream_events(server, stream):
    r = server.get(f"/api/events/streams/{stream}")
    assert r.status_code == 200, r.text
    return r.json()["data"]


def test_each_changed_row_of_a_published_table_is_a_message(server):
    table = new_table(server, realtime=True)
    assert schema_of(server, table)["realtime"] is True
    channel = f"table:{table}"
    assert channel in channel_patterns(server)
    token, _ = sign_up(server)
    admin = Client(server, {"apiKey": server.admin_key})
    user = Client(server, {"token": token})  # no row-level security on this table: users may listen
    try:
        for c in (admin, user):
            assert c.call("realtime:subscribe", {"channel": channel})["ok"] is True
        a, b = records(server, table, json=[{"title": "a", "n": 1, "o": 10}, {"title": "b", "n": 2, "o": 20}])
        records(server, table, "PATCH", params={"id": f"eq.{a['id']}"}, json={"n": 5})
        records(server, table, "DELETE", params={"id": f"eq.{b['id']}"})

        for c in (admin, user):
            inserts = c.wait_for("INSERT", 2)
            [update] = c.wait_for("UPDATE")
            [delete] = c.wait_for("DELETE")
            assert sorted((m["record"]["title"], m["record"]["n"], m["record"]["o"]) for m in inserts) == [("a", 1, 10), ("b", 2, 20)]
            for m in inserts:
                assert m["old_record"] is None and m["operation"] == "INSERT"
                assert m["schema"] == "public" and m["table"] == table
                assert m["meta"]["channel"] == channel and m["meta"]["senderType"] == "system"
            assert update["record"]["id"] == a["id"] and update["record"]["n"] == 5 and update["record"]["title"] == "a"
            assert update["old_record"]["n"] == 1 and update["operation"] == "UPDATE"
            assert delete["record"] is None and delete["old_record"]["id"] == b["id"] and delete["old_record"]["o"] == 20
            # In log order: the inserts, then the update, then the delete.
            positions = [m["meta"]["position"] for m in inserts] + [update["meta"]["position"], delete["meta"]["position"]]
            assert positions == sorted(positions)
    finally:
        admin.close()
        user.close()

    # The change events carry whole rows too (a column named `n` or `o` once replaced them).
    events = stream_events(server, f"table-{table}")
    inserted = next(e for e in events if e["type"] == "RecordsInserted")
    assert sorted(r["title"] for r in inserted["data"]["records"]) == ["a", "b"]
    assert {r["n"] for r in inserted["data"]["records"]} == {1, 2}
    updated = next(e for e in events if e["type"] == "RecordsUpdated")
    assert updated["data"]["records"][0]["old"]["n"] == 1 and updated["data"]["records"][0]["new"]["n"] == 5
    deleted = next(e for e in events if e["type"] == "RecordsDeleted")
    assert deleted["data"]["records"][0]["o"] == 20

    # The messages are in the channel's history.
    channel_id = channel_patterns(server)[channel]["id"]
    r = server.get("/api/realtime/messages", params={"channelId": channel_id, "limit": 10})
    assert r.status_code == 200, r.text
    assert sorted(m["eventName"] for m in r.json()) == ["DELETE", "INSERT", "INSERT", "UPDATE"]


def test_publishing_is_opt_in_and_can_be_turned_off(server):
    table = new_table(server)
    channel = f"table:{table}"
    assert schema_of(server, table)["realtime"] is False
    assert channel not in channel_patterns(server)
    admin = Client(server, {"apiKey": server.admin_key})
    try:
        refused = admin.call("realtime:subscribe", {"channel": channel})  # no channel takes the name yet
        assert refused["ok"] is False and refused["error"]["code"] == "REALTIME_UNAUTHORIZED"

        r = patch_schema(server, table, {"realtime": True})
        assert r.status_code == 200, r.text
        assert schema_of(server, table)["realtime"] is True and channel in channel_patterns(server)
        assert admin.call("realtime:subscribe", {"channel": channel})["ok"] is True
        records(server, table, json={"title": "first"})
        [first] = admin.wait_for("INSERT")
        assert first["record"]["title"] == "first"

        # Asking again changes nothing and records nothing.
        assert patch_schema(server, table, {"realtime": True}).status_code == 200

        assert patch_schema(server, table, {"realtime": False}).status_code == 200
        assert schema_of(server, table)["realtime"] is False
        records(server, table, json={"title": "unpublished"})
        records(server, table, "PATCH", params={"title": "eq.first"}, json={"n": 3})
        # A message published after the table's would arrive after them: wait for it, then count.
        r = server.post("/api/realtime/messages", json={"channel": channel, "event": "marker", "payload": {}})
        assert r.status_code == 201, r.text
        admin.wait_for("marker")
        assert len(admin.named("INSERT")) == 1 and admin.named("UPDATE") == []
    finally:
        admin.close()

    changes = [e["data"]["enabled"] for e in stream_events(server, f"schema-{table}") if e["type"] == "TableRealtimeChanged"]
    assert changes == [True, False]


def test_row_level_security_decides_who_hears_of_which_row(server):
    """Each non-admin subscriber gets the inserts and updates of rows it can see (checked as itself),
    and deletes by primary key only; admins get everything; live and replayed alike."""
    table = f"rt_{secrets.token_hex(4)}"
    r = server.post("/api/database/tables", json={"tableName": table, "realtime": True, "columns": [
        {"columnName": "title", "type": "string", "isNullable": False},
        {"columnName": "owner", "type": "uuid", "isNullable": True}]})
    assert r.status_code == 201, r.text
    raw_sql(server, f'CREATE POLICY own ON public."{table}" FOR ALL TO authenticated '
                    f'USING (owner = auth.uid()) WITH CHECK (owner = auth.uid())')
    channel = f"table:{table}"
    token_a, user_a = sign_up(server)
    token_b, user_b = sign_up(server)
    anon = server.get("/api/metadata/anon-key").json()["anonKey"]
    admin = Client(server, {"apiKey": server.admin_key})
    a = Client(server, {"token": token_a})
    b = Client(server, {"token": token_b})
    guest = Client(server, {"token": anon})
    everyone = (admin, a, b, guest)

    def marker(n):
        """A message after the changes, on the same channel: once it is in, so is all they were sent."""
        r = server.post("/api/realtime/messages", json={"channel": channel, "event": "marker", "payload": {"n": n}})
        assert r.status_code == 201, r.text
        for c in everyone:
            c.wait_for("marker", n)

    try:
        for c in everyone:
            assert c.call("realtime:subscribe", {"channel": channel})["ok"] is True
        row_a, row_b = records(server, table, json=[{"title": "for a", "owner": user_a}, {"title": "for b", "owner": user_b}])
        marker(1)
        assert [m["record"]["title"] for m in a.named("INSERT")] == ["for a"]
        assert [m["record"]["title"] for m in b.named("INSERT")] == ["for b"]
        assert guest.named("INSERT") == []
        assert sorted(m["record"]["title"] for m in admin.named("INSERT")) == ["for a", "for b"]

        records(server, table, "PATCH", params={"id": f"eq.{row_a['id']}"}, json={"title": "for a, again"})
        records(server, table, "DELETE", params={"id": f"eq.{row_b['id']}"})
        marker(2)
        [update] = a.named("UPDATE")
        assert update["record"]["title"] == "for a, again" and update["old_record"]["title"] == "for a"
        assert b.named("UPDATE") == [] and guest.named("UPDATE") == []
        # The row is gone, so nothing can be checked: non-admins learn its key only.
        for c in (a, b, guest):
            [gone] = c.named("DELETE")
            assert gone["record"] is None and gone["old_record"] == {"id": row_b["id"]}
        [gone] = admin.named("DELETE")
        assert gone["old_record"]["title"] == "for b" and gone["old_record"]["owner"] == user_b

        # A user's own write reaches it through the records API, as any other.
        r = server.post(f"/api/database/records/{table}", key=token_a, json={"title": "by a", "owner": user_a})
        assert r.status_code == 201, r.text
        a.wait_for("INSERT", 2)
        marker(3)
        assert [m["record"]["title"] for m in b.named("INSERT")] == ["for b"]

        # A replay is filtered the same way.
        late = Client(server, {"token": token_a})
        try:
            assert late.call("realtime:subscribe", {"channel": channel, "since": 0})["ok"] is True
            late.wait_for("marker", 3)
            assert [m["record"]["title"] for m in late.named("INSERT")] == ["for a", "by a"]
            assert [m["old_record"] for m in late.named("DELETE")] == [{"id": row_b["id"]}]
        finally:
            late.close()

        # Clients never publish on a table channel.
        forged = a.call("realtime:publish", {"channel": channel, "event": "DELETE", "payload": {"record": None}})
        assert forged["ok"] is False and forged["error"]["code"] == "REALTIME_UNAUTHORIZED"

        # Without row-level security the rows are anyone's to read, and to hear about.
        raw_sql(server, f'ALTER TABLE public."{table}" DISABLE ROW LEVEL SECURITY')
        records(server, table, json={"title": "open", "owner": user_b})
        marker(4)
        assert [m["record"]["title"] for m in guest.named("INSERT")] == ["open"]
        assert [m["record"]["title"] for m in a.named("INSERT")][-1] == "open"
    finally:
        for c in everyone:
            c.close()


def test_a_renamed_table_publishes_under_its_new_name(server):
    old = new_table(server, realtime=True)
    new = f"{old}_renamed"
    r = patch_schema(server, old, {"renameTable": {"newTableName": new}})
    assert r.status_code == 200, r.text
    assert schema_of(server, new)["realtime"] is True and f"table:{new}" in channel_patterns(server)
    admin = Client(server, {"apiKey": server.admin_key})
    try:
        assert admin.call("realtime:subscribe", {"channel": f"table:{new}"})["ok"] is True
        records(server, new, json={"title": "moved"})
        [m] = admin.wait_for("INSERT")
        assert m["table"] == new and m["record"]["title"] == "moved"
    finally:
        admin.close()


def test_an_admin_channel_that_takes_the_name_is_used(server):
    """A broader channel an admin made (`tables:%`-style) is kept: no exact channel is added beside it."""
    prefix = f"table:wide{secrets.token_hex(3)}"
    r = server.post("/api/realtime/channels", json={"pattern": f"{prefix}%"})
    assert r.status_code == 201, r.text
    table = new_table(server, realtime=True, name=f"{prefix[len('table:'):]}_t")
    assert f"table:{table}" not in channel_patterns(server)
    admin = Client(server, {"apiKey": server.admin_key})
    try:
        assert admin.call("realtime:subscribe", {"channel": f"table:{table}"})["ok"] is True
        records(server, table, json={"title": "wide"})
        [m] = admin.wait_for("INSERT")
        assert m["meta"]["channel"] == f"table:{table}"
    finally:
        admin.close()


@pytest.mark.parametrize("body", [{"realtime": "yes"}, {"realtime": 1}, {"realtime": None, "renameTable": 3}, {}])
def test_bad_realtime_settings_are_400(server, body):
    table = new_table(server)
    r = patch_schema(server, table, body)
    assert r.status_code == 400, r.text
    assert r.json()["statusCode"] == 400 and r.json()["error"]
    assert schema_of(server, table)["realtime"] is False


def test_realtime_on_create_must_be_a_boolean_and_unknown_tables_are_404(server):
    name = f"rt_{secrets.token_hex(4)}"
    r = server.post("/api/database/tables", json={"tableName": name, "realtime": "on",
                                                  "columns": [{"columnName": "title", "type": "string"}]})
    assert r.status_code == 400, r.text
    assert server.get(f"/api/database/tables/{name}/schema").status_code == 404
    assert f"table:{name}" not in channel_patterns(server)
    r = patch_schema(server, f"missing_{secrets.token_hex(3)}", {"realtime": True})
    assert r.status_code == 404, r.text
    # A table that is not made gets no channel either.
    r = server.post("/api/database/tables", json={"tableName": name, "realtime": True,
                                                  "columns": [{"columnName": "title", "type": "no_such_type"}]})
    assert r.status_code == 400, r.text
    assert f"table:{name}" not in channel_patterns(server)
    table = new_table(server)
    r = patch_schema(server, table, {"realtime": True, "addColumns": [{"columnName": "x", "type": "no_such_type"}]})
    assert r.status_code == 400, r.text
    assert f"table:{table}" not in channel_patterns(server) and schema_of(server, table)["realtime"] is False
