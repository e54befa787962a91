print("compare: not yet")
