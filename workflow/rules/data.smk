# owned by its issue; placeholder
def data_targets():
    return []
