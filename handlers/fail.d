handlers/fail.so: handlers/fail.c include/redwork/handler.h
include/redwork/handler.h:
