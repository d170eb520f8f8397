#!/usr/bin/env escript
%%! -noshell
%% Check a rabbitmq.conf against RabbitMQ's own configuration schemas (cuttlefish), as the
%% node does at boot: unknown keys, bad values and failed validators are errors.
%% Usage (ERL_LIBS=<rabbitmq_server>/plugins): escript rabbitmq_conf_check.escript CONF SCHEMA...
main([Conf | Schemas]) when Schemas =/= [] ->
    Schema = cuttlefish_schema:files(Schemas),
    case cuttlefish_conf:files([Conf]) of
        {errorlist, Errors} ->
            io:format("ERROR parse ~p~n", [Errors]),
            halt(1);
        Parsed ->
            case cuttlefish_generator:map(Schema, Parsed) of
                {error, Phase, {errorlist, Errors}} ->
                    io:format("ERROR ~p ~p~n", [Phase, Errors]),
                    halt(1);
                Mapped ->
                    io:format("OK ~p applications configured~n", [length(Mapped)]),
                    halt(0)
            end
    end;
main(_) ->
    io:format("usage: rabbitmq_conf_check.escript CONF SCHEMA...~n"),
    halt(2).
