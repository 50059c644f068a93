async def test_smoke(control):
    org = await control.new_org()
    conn = await control.new_connector(org["slug"])
    api = await control.new_api(org["slug"], conn["id"])
    assert api["version"] == 1
    await control.watch.wait_for(lambda: control.watch.document("api", api["id"]) is not None, 5)
